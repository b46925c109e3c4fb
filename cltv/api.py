"""POST /predict_cltv: CLTV scores by customer id or by raw (frequency, recency, T, monetary_value)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from django.contrib.auth.decorators import login_not_required
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rfm_portal.core.api import (
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictSerializer,
    UnscorableInput,
    check_finite_output,
    error_responses,
    text_schema,
)
from rfm_portal.core.schema import RequiredBodySchema
from rfm_portal.mlops import services as registry

from . import selectors, services
from .pipeline import CLTVModelBundle, score_frame

MAX_BATCH = 10_000
UNIT_DAYS = {"days": 1.0, "weeks": 7.0}
PAYLOAD_FIELDS = ("frequency", "recency", "T", "monetary_value")
OUTPUT_FIELDS = (
    "p_alive", "expected_purchases_30d", "expected_purchases_90d", "expected_purchases_365d",
    "expected_aov", "clv", "clv_p10", "clv_p50", "clv_p90",
)  # fmt: skip


# Payload bounds: far beyond any real customer, small enough that every output stays a finite number.
PAYLOAD_BOUNDS = {"frequency": 100_000, "recency": 100_000.0, "T": 100_000.0, "monetary_value": 1e9}
MAX_ID = 64  # Customer.external_id


class CLTVPayloadRowSerializer(serializers.Serializer):
    frequency = StrictIntegerField(min_value=0, max_value=PAYLOAD_BOUNDS["frequency"],
                                   help_text="Repeat purchase days (purchases after the first).")
    recency = StrictFloatField(min_value=0, max_value=PAYLOAD_BOUNDS["recency"],
                               help_text="First to last purchase, in `unit`; 0 if frequency is 0.")
    T = StrictFloatField(min_value=0, max_value=PAYLOAD_BOUNDS["T"],
                         help_text="First purchase to now, in `unit`; >= recency.")
    monetary_value = StrictFloatField(min_value=0, max_value=PAYLOAD_BOUNDS["monetary_value"],
                                      help_text="Mean value of the repeat purchase days.")


class PayloadRowsField(serializers.ListField):
    """A list of payload rows validated in one vectorised pass (10,000 rows in milliseconds).

    Errors are keyed by row index and field, as DRF's nested list errors are. JSON numbers only (no strings, no
    booleans), finite and within PAYLOAD_BOUNDS; no other keys.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=CLTVPayloadRowSerializer(), **kwargs)

    def to_internal_value(self, data: Any) -> pd.DataFrame:
        if not isinstance(data, list):
            raise serializers.ValidationError("Expected a list of customer objects.")
        if not data:
            raise serializers.ValidationError("Give at least one customer.")
        if len(data) > MAX_BATCH:
            raise serializers.ValidationError(f"At most {MAX_BATCH:,} customers per request, got {len(data):,}.")
        errors: dict[int, dict[str, list[str]]] = {}
        values = np.full((len(data), 4), np.nan)
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                errors[i] = {"non_field_errors": ["Expected an object."]}
                continue
            for key in row.keys() - set(PAYLOAD_FIELDS):
                errors.setdefault(i, {})[str(key)] = ["Unknown field."]
            for j, name in enumerate(PAYLOAD_FIELDS):
                value = row.get(name)
                if value is None:
                    errors.setdefault(i, {})[name] = ["This field is required."]
                elif isinstance(value, bool) or not isinstance(value, int | float):
                    errors.setdefault(i, {})[name] = ["A number is required."]
                else:
                    try:
                        values[i, j] = float(value)
                    except OverflowError:
                        values[i, j] = math.inf
                    if not math.isfinite(values[i, j]):
                        errors.setdefault(i, {})[name] = ["A finite number is required."]
        x, tx, T, m = values.T
        with np.errstate(invalid="ignore"):
            checks = (
                ("frequency", (x < 0) | (x != np.round(x)), "Must be a non-negative integer."),
                ("recency", tx < 0, "Must be >= 0."),
                ("T", T < 0, "Must be >= 0."),
                ("monetary_value", m < 0, "Must be >= 0."),
                *((name, values[:, j] > PAYLOAD_BOUNDS[name], f"Must be <= {PAYLOAD_BOUNDS[name]:g}.")
                  for j, name in enumerate(PAYLOAD_FIELDS)),
                ("recency", tx > T + 1e-9, "Must not exceed T."),
                ("recency", (x == 0) & (tx != 0), "Must be 0 when frequency is 0."),
            )
        for name, bad, message in checks:
            for i in np.flatnonzero(bad):
                field_errors = errors.setdefault(int(i), {})
                if name not in field_errors:
                    field_errors[name] = [message]
        if errors:
            raise serializers.ValidationError({i: errors[i] for i in sorted(errors)[:100]})
        return pd.DataFrame(values, columns=list(PAYLOAD_FIELDS))


class PredictCLTVInputSerializer(StrictSerializer):
    customer_id = StrictCharField(required=False, max_length=MAX_ID, help_text="One customer's external id.")
    customer_ids = serializers.ListField(
        child=StrictCharField(max_length=MAX_ID), required=False, allow_empty=False, max_length=MAX_BATCH
    )
    customers = PayloadRowsField(required=False, help_text=f"Up to {MAX_BATCH:,} raw payload rows.")
    unit = serializers.ChoiceField(
        choices=list(UNIT_DAYS), required=False, help_text="Unit of recency and T in payload rows (required with them)."
    )
    horizon_days = StrictFloatField(required=False, min_value=1, max_value=3650)
    annual_discount_rate = StrictFloatField(required=False, min_value=0, max_value=1)
    margin = StrictFloatField(required=False, min_value=0, max_value=1000)
    purchase_horizon = StrictFloatField(
        required=False,
        min_value=0,
        max_value=36_500,
        help_text="Also answer `expected_purchases` over this horizon (any length, e.g. 39 weeks), "
        "in `purchase_horizon_unit`.",
    )
    purchase_horizon_unit = serializers.ChoiceField(
        choices=list(UNIT_DAYS), required=False, help_text="Unit of purchase_horizon; default: `unit`, else days."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        modes = [m for m in ("customer_id", "customer_ids", "customers") if m in attrs]
        if len(modes) != 1:
            raise serializers.ValidationError(
                "Give exactly one of customer_id, customer_ids, customers, or a single "
                "{frequency, recency, T, monetary_value} object."
            )
        mode = modes[0]
        if mode == "customers" and "unit" not in attrs:
            raise serializers.ValidationError({"unit": ['State the unit of recency and T: "days" or "weeks".']})
        if mode != "customers" and "unit" in attrs:
            raise serializers.ValidationError({"unit": ["Only with payload rows (customers)."]})
        if mode == "customer_id":
            attrs["customer_ids"] = [attrs.pop("customer_id")]
        attrs["mode"] = mode
        if "purchase_horizon_unit" in attrs and "purchase_horizon" not in attrs:
            raise serializers.ValidationError({"purchase_horizon": ["Give the horizon with its unit."]})
        if "purchase_horizon" in attrs:
            unit = attrs.get("purchase_horizon_unit") or attrs.get("unit") or "days"
            attrs["purchase_horizon_days"] = attrs["purchase_horizon"] * UNIT_DAYS[unit]
        return attrs


def _request_schema() -> dict[str, Any]:
    """The body as OpenAPI states it: one of four shapes, no other keys, every number bounded.

    Not expressible here (validated by the serializer, and answered 400): recency <= T in payload rows.
    """
    settings_props = {
        "horizon_days": {"type": "number", "minimum": 1, "maximum": 3650},
        "annual_discount_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "margin": {"type": "number", "minimum": 0, "maximum": 1000},
        "purchase_horizon": {"type": "number", "minimum": 0, "maximum": 36_500,
                             "description": "Also answer expected_purchases over this horizon."},
        "purchase_horizon_unit": {"type": "string", "enum": list(UNIT_DAYS),
                                  "description": "Unit of purchase_horizon (default: unit, else days)."},
    }
    unit = {"type": "string", "enum": list(UNIT_DAYS), "description": "Unit of recency and T."}
    row_bounds = {
        "frequency": {"type": "integer", "minimum": 0, "maximum": PAYLOAD_BOUNDS["frequency"]},
        **{name: {"type": "number", "minimum": 0, "maximum": PAYLOAD_BOUNDS[name]}
           for name in ("recency", "T", "monetary_value")},
    }
    # frequency 0 means recency 0: two row shapes.
    first_only = {**row_bounds, "frequency": {"type": "integer", "minimum": 0, "maximum": 0},
                  "recency": {"type": "number", "minimum": 0, "maximum": 0}}
    repeat = {**row_bounds, "frequency": {**row_bounds["frequency"], "minimum": 1}}
    rows = [{"type": "object", "properties": props, "required": list(PAYLOAD_FIELDS), "additionalProperties": False}
            for props in (first_only, repeat)]
    ident = text_schema(MAX_ID)

    def shape(title: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
        return {"title": title, "type": "object", "properties": {**props, **settings_props}, "required": required,
                "additionalProperties": False}

    return {"oneOf": [
        shape("ByCustomerId", {"customer_id": ident}, ["customer_id"]),
        shape("ByCustomerIds", {"customer_ids": {"type": "array", "items": ident, "minItems": 1,
                                                 "maxItems": MAX_BATCH}}, ["customer_ids"]),
        shape("ByPayloadRows", {"customers": {"type": "array", "items": {"oneOf": rows}, "minItems": 1,
                                              "maxItems": MAX_BATCH}, "unit": unit}, ["customers", "unit"]),
        *(shape(f"OnePayloadRow{i}", {**row["properties"], "unit": unit}, [*PAYLOAD_FIELDS, "unit"])
          for i, row in enumerate(rows)),
    ]}


class CLTVResultSerializer(serializers.Serializer):
    customer_id = serializers.CharField(required=False, help_text="Present when scored by id.")
    source = serializers.ChoiceField(
        choices=["stored", "stored_history", "recomputed", "payload"],
        help_text="stored: the version's stored scores; stored_history: its stored history rescored with the "
        "given settings; recomputed: history rebuilt from the customer's transactions; payload: your rows.",
    )
    p_alive = serializers.FloatField()
    expected_purchases_30d = serializers.FloatField()
    expected_purchases_90d = serializers.FloatField()
    expected_purchases_365d = serializers.FloatField()
    expected_aov = serializers.FloatField()
    clv = serializers.FloatField(help_text="Closed-form discounted CLV (>= 0).")
    clv_p10 = serializers.FloatField()
    clv_p50 = serializers.FloatField()
    clv_p90 = serializers.FloatField()
    expected_purchases = serializers.FloatField(
        required=False, help_text="Expected purchases over `purchase_horizon` (only when one was asked for)."
    )


class PredictCLTVOutputSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(allow_null=True)
    model = serializers.CharField()
    unit = serializers.CharField(help_text="The model's time unit.")
    horizon_days = serializers.FloatField()
    annual_discount_rate = serializers.FloatField()
    margin = serializers.FloatField()
    purchase_horizon_days = serializers.FloatField(required=False, help_text="The purchase horizon asked for, in days.")
    results = CLTVResultSerializer(many=True)
    not_found = serializers.ListField(child=serializers.CharField(), help_text="Ids without transactions.")


def normalise_body(data: Any) -> Any:
    """A single {frequency, recency, T, monetary_value} object becomes a one-row ``customers`` list."""
    if isinstance(data, dict) and set(PAYLOAD_FIELDS) & set(data) and "customers" not in data:
        row = {f: data[f] for f in PAYLOAD_FIELDS if f in data}
        return {k: v for k, v in data.items() if k not in PAYLOAD_FIELDS} | {"customers": [row]}
    return data


def _scored(bundle: CLTVModelBundle, history: pd.DataFrame, purchase_days: float | None) -> pd.DataFrame:
    """score_frame plus, when asked, expected purchases over an arbitrary horizon (BG/NBD's conditional form)."""
    scores = score_frame(bundle, history)
    if purchase_days is not None:
        x, tx, T = (history[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
        scores["expected_purchases"] = bundle.expected_purchases(purchase_days, x, tx, T)
    return scores


def _results(frame: pd.DataFrame, source: str, ids: list[str] | None = None) -> list[dict[str, Any]]:
    fields = (*OUTPUT_FIELDS, "expected_purchases") if "expected_purchases" in frame else OUTPUT_FIELDS
    cols = {c: frame[c].to_numpy(dtype=float).tolist() for c in fields}
    out = []
    for i in range(len(frame)):
        row: dict[str, Any] = {"source": source, **{c: cols[c][i] for c in fields}}
        if ids is not None:
            row = {"customer_id": ids[i], **row}
        out.append(row)
    return out


def _score_ids(
    bundle: CLTVModelBundle, mv_pk: int, ids: list[str], overrides: bool, purchase_days: float | None = None
) -> tuple[list, list[str]]:
    """Scores by external id.

    Scored customers: the stored scores, or with other settings their stored history (x, t_x, T,
    m_x as of the model's cut-off) rescored. Customers the version did not score (e.g. imported
    later): their history recomputed from their transactions, then scored.
    """
    mv = selectors.active_version()
    stored = selectors.scores_for_external_ids(mv, ids) if mv is not None and mv.pk == mv_pk else {}
    results: dict[str, dict[str, Any]] = {}
    if not overrides:
        for ext, row in stored.items():
            results[ext] = {"customer_id": ext, "source": "stored", **{c: row[c] for c in OUTPUT_FIELDS}}
    elif stored:
        exts = list(stored)
        history = pd.DataFrame(
            [(stored[e]["frequency"], stored[e]["recency"], stored[e]["T"], stored[e]["monetary"]) for e in exts],
            columns=list(PAYLOAD_FIELDS),
            dtype=float,
        )
        for row in _results(_scored(bundle, history, purchase_days), "stored_history", exts):
            results[row["customer_id"]] = row
    rest = [i for i in dict.fromkeys(ids) if i not in results]
    if rest:
        pks = selectors.customer_ids_by_external(rest)
        summary = services.customer_summaries(bundle, list(pks.values())) if pks else pd.DataFrame()
        if not summary.empty:
            by_pk = {pk: ext for ext, pk in pks.items()}
            scores = _scored(bundle, summary[list(PAYLOAD_FIELDS)], purchase_days)
            exts = [by_pk[int(pk)] for pk in summary.index]
            for row in _results(scores, "recomputed", exts):
                results[row["customer_id"]] = row
    ordered = [results[i] for i in dict.fromkeys(ids) if i in results]
    return ordered, [i for i in dict.fromkeys(ids) if i not in results]


def _score_payload(bundle: CLTVModelBundle, frame: pd.DataFrame, unit: str,
                   purchase_days: float | None) -> list[dict[str, Any]]:
    """Payload rows (validated by PayloadRowsField, recency and T in ``unit``) scored; UnscorableInput (422)
    when an output is not finite."""
    frame[["recency", "T"]] *= UNIT_DAYS[unit] / bundle.unit_days
    scores = _scored(bundle, frame, purchase_days)
    check_finite_output(scores[[c for c in (*OUTPUT_FIELDS, "expected_purchases") if c in scores]],
                        "these payload rows")
    return _results(scores, "payload")


def _response_body(version: int, bundle: CLTVModelBundle, results: list[dict[str, Any]], not_found: list[str],
                   purchase_days: float | None) -> dict[str, Any]:
    return {
        "model_version": version,
        "model": bundle.model,
        "unit": bundle.unit,
        "horizon_days": bundle.clv_horizon_days,
        "annual_discount_rate": bundle.annual_discount_rate,
        "margin": bundle.margin,
        **({"purchase_horizon_days": purchase_days} if purchase_days is not None else {}),
        "results": results,
        "not_found": not_found,
    }


_PAYLOAD_ROWS = PayloadRowsField()


def fast_path_body(data: Any) -> dict[str, Any] | None:
    """The 200 body PredictCLTVApi answers for payload rows (``{"customers": [...], "unit": ...}`` or one row
    object with its unit) and no other settings, computed without DRF; None for anything else (ids, settings,
    invalid input, rows the model cannot score, no fresh cached model): the serving fast path
    (rfm_portal.serving.fastpath) then hands the request to the view, which answers it.

    The same checks as PredictCLTVInputSerializer for this shape (the same body normalisation, the same
    PayloadRowsField, the unit one of UNIT_DAYS), the same model and the same body as the view."""
    data = normalise_body(data)
    if type(data) is not dict or data.keys() != {"customers", "unit"}:
        return None
    unit = data["unit"]
    if type(unit) is not str or unit not in UNIT_DAYS:
        return None
    active = registry.cached_active_entry(services.KIND)
    if active is None:
        return None
    try:
        frame = _PAYLOAD_ROWS.to_internal_value(data["customers"])
        results = _score_payload(active.obj, frame, unit, None)
    except (serializers.ValidationError, UnscorableInput):
        return None
    return _response_body(active.version, active.obj, results, [], None)


class PredictCLTVApi(APIView):
    schema = RequiredBodySchema()

    @extend_schema(
        operation_id="predict_cltv",
        summary="CLTV, P(alive) and expected purchases by customer id or raw payload",
        description=(
            'Body: `{"customer_id": ...}`, `{"customer_ids": [...]}` (stored scores of the active model; '
            "with settings given, the stored history rescored; customers not scored: recomputed from their "
            "transactions), "
            '`{"customers": [{frequency, recency, T, monetary_value}, ...], "unit": "weeks"}` or one such '
            f"object. At most {MAX_BATCH:,} rows. Optional horizon_days, annual_discount_rate, margin (CLV "
            "settings) and purchase_horizon (+ purchase_horizon_unit) for expected purchases over any horizon. "
            "503 when no CLTV model is active."
        ),
        request={"application/json": _request_schema()},
        responses={
            200: PredictCLTVOutputSerializer,
            **error_responses(400, 413, 415, 422, 503, extra={
                400: "Invalid body: errors per field, and per row index for `customers`.",
                422: "Valid rows the model cannot turn into finite scores.",
                503: "No active CLTV model, or the database is busy (retry after Retry-After seconds)."}),
        },
        examples=[
            OpenApiExample(
                "payload",
                value={
                    "customers": [{"frequency": 2, "recency": 30.4, "T": 38.9, "monetary_value": 22.5}],
                    "unit": "weeks",
                },
                request_only=True,
            )
        ],
        tags=["cltv"],
    )
    def post(self, request: Request) -> Response:
        serializer = PredictCLTVInputSerializer(data=normalise_body(request.data))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            # the version number comes with the cached model: no query per call (mlops.services.load_active_entry)
            active = registry.load_active_entry(services.KIND)
        except registry.NoActiveModel:
            return Response(
                {"detail": "No active CLTV model yet: an admin must train one (CLTV page or manage.py train_cltv)."},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        settings_given = {k: data[k] for k in ("horizon_days", "annual_discount_rate", "margin") if k in data}
        bundle: CLTVModelBundle = services.bundle_with_settings(active.obj, **settings_given)
        purchase_days = data.get("purchase_horizon_days")
        if data["mode"] == "customers":
            results, not_found = _score_payload(bundle, data["customers"], data["unit"], purchase_days), []
        else:
            # with a purchase horizon the stored history is rescored (stored rows hold 30/90/365 days only)
            overrides = bool(settings_given) or purchase_days is not None
            results, not_found = _score_ids(bundle, active.pk, data["customer_ids"], overrides, purchase_days)
        return Response(_response_body(active.version, bundle, results, not_found, purchase_days))


# DRF authenticates (API key or session); the login-redirect middleware must not.
predict_cltv_api = login_not_required(PredictCLTVApi.as_view())
