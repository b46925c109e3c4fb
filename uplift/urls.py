from django.urls import path

from . import api, views

app_name = "uplift"

urlpatterns = [
    path("uplift/", views.overview, name="overview"),
    path("uplift/customers/", views.member_list, name="members"),
    path("uplift/customers.csv", views.member_csv, name="members-csv"),
    path("uplift/train/", views.train, name="train"),
    path("uplift_score", api.uplift_score_api, name="api-score"),
]
