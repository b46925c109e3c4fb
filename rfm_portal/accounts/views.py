"""Admin pages: users and roles, API keys. Every view is admin-only on the server."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from . import selectors, services
from .forms import APIKeyCreateForm, RoleForm, UserCreateForm
from .permissions import admin_required


def _errors(error: ValidationError) -> str:
    return " ".join(error.messages)


@admin_required
def user_list(request: HttpRequest) -> HttpResponse:
    context = {"users": selectors.user_list(), "role_form": RoleForm()}
    return render(request, "accounts/user_list.html", context)


@admin_required
@require_http_methods(["GET", "POST"])
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_create(**form.cleaned_data)
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                for field, errors in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                form.add_error("password", error)
        else:
            messages.success(request, f"User {user.username} created as {user.get_role_display()}.")
            return redirect("accounts:users")
    return render(request, "accounts/user_form.html", {"form": form})


@admin_required
@require_POST
def user_change_role(request: HttpRequest, pk: int) -> HttpResponse:
    user = selectors.user_get(pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("accounts:users")
    try:
        services.user_change_role(user=user, role=form.cleaned_data["role"], by=request.user)
    except ValidationError as error:
        messages.error(request, _errors(error))
    else:
        messages.success(request, f"{user.username} is now {user.get_role_display()}.")
    return redirect("accounts:users")


@admin_required
@require_POST
def user_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    user = selectors.user_get(pk)
    try:
        services.user_deactivate(user=user, by=request.user)
    except ValidationError as error:
        messages.error(request, _errors(error))
    else:
        messages.success(request, f"{user.username} has been deactivated.")
    return redirect("accounts:users")


@admin_required
def api_key_list(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/api_key_list.html", {"keys": selectors.api_key_list()})


@admin_required
@never_cache  # the response that shows the raw key must not be kept by any cache
@require_http_methods(["GET", "POST"])
def api_key_create(request: HttpRequest) -> HttpResponse:
    form = APIKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = services.api_key_create(
                name=form.cleaned_data["name"],
                expires_in_days=form.cleaned_data["expires_in_days"],
                created_by=request.user,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            # Rendered, not redirected: the raw key exists only in this one response.
            return render(request, "accounts/api_key_created.html", {"created": created})
    return render(request, "accounts/api_key_form.html", {"form": form})


@admin_required
@require_POST
def api_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    api_key = services.api_key_revoke(api_key=selectors.api_key_get(pk))
    messages.success(request, f"API key {api_key.name} ({api_key.prefix}…) revoked.")
    return redirect("accounts:api-keys")
