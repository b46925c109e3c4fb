from django.urls import path

from . import api, views

app_name = "cltv"

urlpatterns = [
    path("cltv/", views.overview, name="overview"),
    path("cltv/scores.csv", views.scores_csv, name="scores-csv"),
    path("cltv/train/", views.train, name="train"),
    path("predict_cltv", api.predict_cltv_api, name="predict"),
]
