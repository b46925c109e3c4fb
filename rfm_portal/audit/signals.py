"""Audit receivers: the core writes its own entries from signals, so apps never import the audit app to be
logged, and apps added later are covered by convention (any ``*AuditLog`` model is mirrored)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from rfm_portal.accounts.models import APIKey
from rfm_portal.customers.models import ImportJob
from rfm_portal.mlops.models import ModelVersion
from rfm_portal.mlops.signals import model_activated, model_training_failed

from .middleware import client_ip
from .services import record_safely

User = get_user_model()


# --- Logins ----------------------------------------------------------------------------------------------
@receiver(user_logged_in, dispatch_uid="audit.login")
def _login(sender, request, user, **kwargs) -> None:
    record_safely(user, "auth.login", user, ip_address=client_ip(request) if request else None)


@receiver(user_logged_out, dispatch_uid="audit.logout")
def _logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        record_safely(user, "auth.logout", user, ip_address=client_ip(request) if request else None)


@receiver(user_login_failed, dispatch_uid="audit.login_failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    # Django masks the password in ``credentials``; only the typed username is kept (a portal account name).
    username = str(credentials.get("username", ""))[:150]
    record_safely(None, "auth.login_failed", ("accounts.user", ""), {"reason": "bad credentials or locked out"},
                  actor_label=username or "(no username)", ip_address=client_ip(request) if request else None)


# --- Remember the previous values of the watched fields, to log changes only -----------------------------
WATCHED = {User: ("role", "is_active", "is_superuser", "is_staff"), APIKey: ("revoked_at",),
           ImportJob: ("status",), ModelVersion: ("status",)}


def _remember(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    fields = WATCHED[sender]
    instance._audit_before = None
    if raw or instance.pk is None or (update_fields is not None and not set(fields) & set(update_fields)):
        return
    instance._audit_before = sender.objects.filter(pk=instance.pk).values(*fields).first()


for _model in WATCHED:
    pre_save.connect(_remember, sender=_model, dispatch_uid=f"audit.remember.{_model._meta.label_lower}")


def _changed(instance, field: str) -> tuple[bool, Any]:
    before = getattr(instance, "_audit_before", None)
    if before is None:
        return False, None
    return before[field] != getattr(instance, field), before[field]


# --- Users and roles -------------------------------------------------------------------------------------
@receiver(post_save, sender=User, dispatch_uid="audit.user")
def _user_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    if created:
        record_safely(None, "user.created", instance, {"role": instance.role, "is_superuser": instance.is_superuser})
        return
    changes = {}
    for field in WATCHED[User]:
        changed, old = _changed(instance, field)
        if changed:
            changes[field] = {"from": old, "to": getattr(instance, field)}
    if "role" in changes or "is_superuser" in changes or "is_staff" in changes:
        record_safely(None, "user.role_changed", instance, changes)
    elif "is_active" in changes:
        record_safely(None, "user.activated" if instance.is_active else "user.deactivated", instance, changes)


# --- API keys --------------------------------------------------------------------------------------------
@receiver(post_save, sender=APIKey, dispatch_uid="audit.api_key")
def _api_key_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    if created:
        record_safely(instance.created_by, "api_key.created", instance,
                      {"prefix": instance.prefix, "expires_at": instance.expires_at.isoformat()
                       if instance.expires_at else None})


def api_key_revoked(api_key: APIKey) -> None:
    """Called by ``accounts.services.api_key_revoke`` (a queryset update sends no post_save)."""
    record_safely(None, "api_key.revoked", api_key, {"prefix": api_key.prefix})


@receiver(post_save, sender=APIKey, dispatch_uid="audit.api_key_revoked_by_save")
def _api_key_revoked_by_save(sender, instance, created, raw=False, **kwargs) -> None:
    changed, old = _changed(instance, "revoked_at")
    if not raw and not created and changed and old is None and instance.revoked_at is not None:
        api_key_revoked(instance)


# --- Imports ---------------------------------------------------------------------------------------------
IMPORT_DONE = {ImportJob.Status.SUCCEEDED, ImportJob.Status.REJECTED, ImportJob.Status.FAILED}


@receiver(post_save, sender=ImportJob, dispatch_uid="audit.import")
def _import_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    counts = {"kind": instance.kind, "status": instance.status, "rows_total": instance.rows_total,
              "rows_inserted": instance.rows_inserted, "rows_rejected": instance.rows_rejected}
    changed, _old = _changed(instance, "status")
    if created:
        record_safely(instance.created_by, "import.started", instance, counts)
        if instance.status in IMPORT_DONE:
            record_safely(instance.created_by, f"import.{instance.status}", instance, counts)
    elif changed and instance.status in IMPORT_DONE:
        record_safely(instance.created_by, f"import.{instance.status}", instance, counts)


# --- Model versions: training, promotion, rollback ---------------------------------------------------------
# "failed" is set with a queryset update: the model_training_failed signal reports it.
TRAINING_STATES = {ModelVersion.Status.READY: "model.ready", ModelVersion.Status.FAILED: "model.failed"}


@receiver(post_save, sender=ModelVersion, dispatch_uid="audit.model_version")
def _model_version_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    facts = {"kind": instance.kind, "version": instance.version, "status": instance.status}
    if created:
        record_safely(instance.trained_by, "model.training_started", instance, facts)
        return
    changed, old = _changed(instance, "status")
    if changed and instance.status in TRAINING_STATES and old == ModelVersion.Status.TRAINING:
        record_safely(instance.trained_by, TRAINING_STATES[instance.status], instance, facts)


@receiver(model_training_failed, dispatch_uid="audit.model_failed")
def _model_failed(sender, model_version, **kwargs) -> None:
    record_safely(model_version.trained_by, "model.failed", model_version,
                  {"kind": model_version.kind, "version": model_version.version, "status": model_version.status})


@receiver(model_activated, dispatch_uid="audit.model_activated")
def _model_activated(sender, model_version, rollback: bool, **kwargs) -> None:
    facts = {"kind": model_version.kind, "version": model_version.version}
    action = "model.rolled_back" if rollback else "model.promoted"
    # Written in the activation's transaction: an activation that rolls back leaves no entry.
    record_safely(None, action, model_version, facts)


# --- Apps' own audit logs (e.g. campaigns.CampaignAuditLog): mirrored as global entries ---------------------
def _mirror_app_log(sender, instance, created, raw=False, **kwargs) -> None:
    if raw or not created:
        return
    target = None
    for field in sender._meta.concrete_fields:
        if field.is_relation and field.name != "user" and field.related_model is not User:
            target = (field.related_model._meta.label_lower, getattr(instance, field.attname))
            break
    changes = getattr(instance, "changes", None)
    details = {"source": sender._meta.label_lower, "source_id": instance.pk}
    if isinstance(changes, dict) and changes:
        details["changed_fields"] = sorted(str(k) for k in changes)  # names only: values may be free text
    user = getattr(instance, "user", None)
    action = f"{sender._meta.app_label}.{getattr(instance, 'action', 'logged')}"
    record_safely(user, action, target, details)


def connect_app_logs() -> list[str]:
    """Mirror every installed model named ``...AuditLog`` that has an ``action`` field."""
    connected = []
    for model in apps.get_models():
        if model._meta.object_name.endswith("AuditLog") and any(f.name == "action" for f in model._meta.fields):
            post_save.connect(_mirror_app_log, sender=model, dispatch_uid=f"audit.mirror.{model._meta.label_lower}")
            connected.append(model._meta.label_lower)
    return connected


connect_app_logs()
