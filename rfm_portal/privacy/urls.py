from django.urls import path

from . import views

app_name = "privacy"

urlpatterns = [
    path("limitations/", views.limitations, name="limitations"),
    path("privacy/customers/<str:external_id>/erase/", views.customer_erase, name="customer-erase"),
    path("privacy/customers/<str:external_id>/export.json", views.customer_export, name="customer-export"),
]
