from django.urls import path

from . import api, views

app_name = "campaigns"

urlpatterns = [
    path("campaigns/", views.campaign_list, name="list"),
    path("campaigns/new/", views.campaign_new, name="new"),
    path("campaigns/templates/", views.template_list, name="templates"),
    path("campaigns/templates/new/", views.template_new, name="template-new"),
    path("campaigns/templates/<int:pk>/edit/", views.template_edit, name="template-edit"),
    path("campaigns/templates/<int:pk>/delete/", views.template_delete, name="template-delete"),
    path("campaigns/<int:pk>/", views.campaign_detail, name="detail"),
    path("campaigns/<int:pk>/edit/", views.campaign_edit, name="edit"),
    path("campaigns/<int:pk>/plan/", views.campaign_plan, name="plan"),
    path("campaigns/<int:pk>/submit/", views.campaign_submit, name="submit"),
    path("campaigns/<int:pk>/approve/", views.campaign_approve, name="approve"),
    path("campaigns/<int:pk>/reject/", views.campaign_reject, name="reject"),
    path("campaigns/<int:pk>/export/", views.campaign_export, name="export"),
    path("campaigns/<int:pk>/measure/", views.campaign_measure, name="measure"),
    path("campaigns/<int:pk>/close/", views.campaign_close, name="close"),
    path("campaigns/<int:pk>/targets/", views.campaign_targets, name="targets"),
    path("api/campaigns/", api.campaign_list_api, name="api-list"),
    path("api/campaigns/<str:pk>/targets/", api.campaign_targets_api, name="api-targets"),
]
