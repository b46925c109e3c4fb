from django.urls import path

from . import api, views

app_name = "mlops"

urlpatterns = [
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/start/<slug:name>/", views.job_start, name="job-start"),
    path("models/", views.model_list, name="models"),
    path("models/<int:pk>/", views.model_detail, name="model-detail"),
    path("models/<int:pk>/promote/", views.model_promote, name="model-promote"),
    path("models/<int:pk>/card.md", views.model_card_download, name="model-card"),
    path("models/<slug:kind>/rollback/", views.model_rollback, name="model-rollback"),
    path("api/jobs/", api.JobListApi.as_view(), name="api-jobs"),
    # Any segment: a non-number id gets the API's JSON 404, not the HTML page of the URL resolver.
    path("api/jobs/<str:pk>/", api.JobDetailApi.as_view(), name="api-job"),
    path("api/models/", api.ModelVersionListApi.as_view(), name="api-models"),
]
