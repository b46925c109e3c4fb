"""Signals of the model registry, for listeners such as the audit log."""

from django.dispatch import Signal

# Sent inside the activation's transaction: model_version (now active), rollback (bool).
model_activated = Signal()
# Sent when a training run is marked failed (by its task or by the reaper of a dead job): model_version.
model_training_failed = Signal()
