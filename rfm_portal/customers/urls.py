from django.urls import path

from . import api, audience_views, import_views, views

app_name = "customers"

urlpatterns = [
    path("customers/", views.customer_list, name="list"),
    path("customers.csv", views.customer_table_csv, name="list-csv"),
    path("customers/save-audience/", views.customer_table_save_audience, name="list-save-audience"),
    path("customers/<str:external_id>/", views.customer_detail, name="detail"),
    path("imports/", views.import_list, name="imports"),
    path("imports/upload/", import_views.import_upload, name="import-upload"),
    path("imports/<int:pk>/", views.import_detail, name="import-detail"),
    path("api/imports/", api.import_create_api, name="api-imports"),
    path("audiences/", audience_views.audience_list, name="audiences"),
    path("audiences/members.csv", audience_views.audience_csv, name="audience-csv"),
    path("audiences/delete/", audience_views.audience_delete, name="audience-delete"),
]
