"""A starter library of message templates: one per goal, and a few written for key RFM segments."""

from django.db import migrations

TEMPLATES = [
    ("Retain – general", "retain", "", "We saved something for you",
     "Hello, it's been {{ days_since_last_order }} days since your last order. As one of our {{ segment }} customers, "
     "here is {{ offer }} on {{ favourite_category }}. You might also like: {{ recommended_products }}."),
    ("Retain – At Risk", "retain", "At Risk", "We miss you",
     "It's been {{ days_since_last_order }} days. Come back to {{ favourite_category }} with {{ offer }} — "
     "picked for you: {{ recommended_products }}."),
    ("Retain – Champions", "retain", "Champions", "Thank you for being one of our best customers",
     "As a thank-you, enjoy {{ offer }} on {{ favourite_category }}. New for you: {{ recommended_products }}."),
    ("Win back – general", "win_back", "", "Come back for {{ offer }}",
     "We haven't seen you for {{ days_since_last_order }} days. {{ offer }} on {{ favourite_category }} is waiting, "
     "and so are {{ recommended_products }}."),
    ("Win back – Hibernating", "win_back", "Hibernating", "A lot has changed since your last visit",
     "Rediscover {{ favourite_category }}: {{ offer }}, plus ideas like {{ recommended_products }}."),
    ("Grow – general", "grow", "", "More of what you love",
     "Customers who buy {{ favourite_category }} like you also pick {{ recommended_products }}. "
     "Try them with {{ offer }}."),
    ("Grow – Loyal", "grow", "Loyal", "Something new for a loyal customer",
     "Thanks for your loyalty. Here is {{ offer }} to try {{ recommended_products }}."),
]


def seed(apps, schema_editor):
    MessageTemplate = apps.get_model("campaigns", "MessageTemplate")
    for name, goal, segment, subject, body in TEMPLATES:
        MessageTemplate.objects.get_or_create(name=name, defaults={"goal": goal, "segment": segment,
                                                                   "subject": subject, "body": body})


def unseed(apps, schema_editor):
    MessageTemplate = apps.get_model("campaigns", "MessageTemplate")
    MessageTemplate.objects.filter(name__in=[t[0] for t in TEMPLATES], created_by__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
