from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("audit/", views.audit_log, name="log"),
    path("audit/log.csv", views.audit_log_csv, name="log-csv"),
]
