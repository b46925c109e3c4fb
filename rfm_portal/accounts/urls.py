from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("users/", views.user_list, name="users"),
    path("users/new/", views.user_create, name="user-create"),
    path("users/<int:pk>/role/", views.user_change_role, name="user-role"),
    path("users/<int:pk>/deactivate/", views.user_deactivate, name="user-deactivate"),
    path("api-keys/", views.api_key_list, name="api-keys"),
    path("api-keys/new/", views.api_key_create, name="api-key-create"),
    path("api-keys/<int:pk>/revoke/", views.api_key_revoke, name="api-key-revoke"),
]
