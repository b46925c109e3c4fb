from django import template

register = template.Library()


@register.filter
def metric(value) -> str:
    """Metrics are free-form JSON: round floats for display, show anything else as is."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@register.filter
def markdown(text) -> str:
    """A model card (markdown) as safe HTML: raw HTML escaped, unsafe links dropped."""
    from rfm_portal.mlops.rendering import render_markdown

    return render_markdown(text)
