from django.urls import path

from . import api, views

app_name = "churn"

urlpatterns = [
    path("churn/", views.overview, name="overview"),
    path("churn/customers/", views.at_risk, name="at-risk"),
    path("churn/win-back/", views.win_back, name="win-back"),
    path("churn/customers.csv", views.at_risk_csv, name="at-risk-csv"),
    path("churn/train/", views.train, name="train"),
    path("predict_churn", api.predict_churn_api, name="api-predict"),
]
