from django.urls import path

from . import api, views

app_name = "embeddings"

urlpatterns = [
    path("lookalikes/", views.explorer, name="overview"),
    path("lookalikes/builder/", views.builder, name="builder"),
    path("lookalikes/builder.csv", views.builder_csv, name="builder-csv"),
    path("lookalikes/builder/save/", views.builder_save, name="builder-save"),
    path("lookalikes/train/", views.train, name="train"),
    path("similar_customers", api.similar_customers_api, name="similar-customers"),
]
