from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "rfm_portal.customers"
    label = "customers"
    verbose_name = "Customers and transactions"
