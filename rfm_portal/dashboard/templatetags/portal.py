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


@register.filter
def money(value, digits=None) -> str:
    """An amount in the portal's currency: 1234.5 -> '£1,235'; `|money:2` keeps pence."""
    from rfm_portal.dashboard.currency import format_money

    return format_money(value, None if digits in (None, "") else int(digits))


@register.simple_tag
def currency_symbol() -> str:
    from rfm_portal.dashboard.currency import currency_symbol as symbol

    return symbol().strip()


@register.filter
def number(value, digits=0) -> str:
    """A plain number with thousands separators and fixed decimals: 29650.123 -> '29,650'."""
    if value is None or value == "":
        return "–"
    try:
        return f"{float(value):,.{int(digits)}f}"
    except (TypeError, ValueError):
        return str(value)
