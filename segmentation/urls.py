from django.urls import path

from segmentation import api, views

app_name = "segmentation"

urlpatterns = [
    path("segments/", views.overview, name="overview"),
    path("segments/clusters/", views.clusters, name="clusters"),
    path("segments/k-search/", views.k_search, name="k-search"),
    path("segments/migration/", views.migration, name="migration"),
    path("segments/members/", views.members, name="members"),
    path("segments/members.csv", views.members_csv, name="members-csv"),
    path("segments/train/", views.train, name="train"),
    path("api/segments/", api.SegmentsApi.as_view(), name="api-segments"),
    path("api/customers/<str:external_id>/rfm/", api.CustomerRFMApi.as_view(), name="api-customer-rfm"),
]
