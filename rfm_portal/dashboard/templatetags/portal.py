from django import template

register = template.Library()


@register.filter
def percent(value, digits: int = 1) -> str:
    """0.4237 -> '42.4%'; None -> '–'."""
    if value is None or value == "":
        return "–"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def absolute(value):
    """Magnitude of a number, e.g. returns shown as a positive amount."""
    return abs(value) if value is not None else value
