"""Campaign writes: drafting, planning (audience → scores → allocation → holdout → targets), the approval
lifecycle with its audit log, exports, measured results, message templates.

Other capabilities are read only through their selectors (uplift, churn, CLTV, segmentation, embeddings,
customers); the money and allocation math is in campaigns.pipeline. Roles are checked here, so pages and
API share one rule: analysts draft, plan and submit; only admins approve, reject, export and close.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns import pipeline
from campaigns.models import Campaign, CampaignAuditLog, CampaignTarget, MessageTemplate
from campaigns.pipeline import Channel, PlanError, PlanInputs, TemplateError
from churn import selectors as churn_selectors
from cltv import selectors as cltv_selectors
from embeddings import selectors as embeddings_selectors
from rfm_portal.accounts.permissions import is_portal_admin
from rfm_portal.customers import selectors as customer_selectors
from segmentation import selectors as segmentation_selectors
from uplift import selectors as uplift_selectors

logger = logging.getLogger(__name__)

Status = Campaign.Status
TARGET_BATCH = 5000
# Inputs that change who is selected: editing one of them discards the plan.
PLAN_FIELDS = ("goal", "audience", "segments", "clusters", "filters", "channels", "incentive_cost", "margin",
               "budget", "holdout_share", "segment_caps", "fatigue_days", "offer", "template")
EDITABLE_FIELDS = (*PLAN_FIELDS, "name", "scheduled_for")
FILTER_KEYS = ("min_churn_risk", "max_churn_risk", "min_clv", "min_p_alive", "uplift_groups", "countries")
KNAPSACK_NOTE = ("Each customer gets at most one channel. The planner takes, across all customers, the best "
                 "profit per unit of spend first (the exact optimum of the relaxed problem), then fills what is "
                 "left of the budget; it can miss the true optimum by at most one customer's profit.")


class CampaignError(ValueError):
    """A request the campaign cannot honour in its state (clear message for the page/API)."""


class CampaignPermissionError(PermissionError):
    """The user's role does not allow this action (admins approve, reject, export and close)."""


class ProgressReporter(Protocol):
    def report(self, progress: int, message: str = "") -> None: ...


class _Silent:
    def report(self, progress: int, message: str = "") -> None:
        logger.debug("campaign plan %s%% %s", progress, message)


def _require_admin(user, action: str) -> None:
    if not is_portal_admin(user):
        raise CampaignPermissionError(f"Only admins may {action} a campaign.")


def _user(user):
    return user if getattr(user, "pk", None) else None


def audit(campaign: Campaign, user, action: str, changes: dict | None = None, comment: str = "") -> CampaignAuditLog:
    return CampaignAuditLog.objects.create(campaign=campaign, user=_user(user), action=action,
                                           changes=changes or {}, comment=comment)


def default_channels() -> list[dict[str, Any]]:
    return [dict(c) for c in settings.CAMPAIGN_DEFAULT_CHANNELS]


def clean_channels(channels: Any) -> list[dict[str, Any]]:
    if not isinstance(channels, list) or not channels:
        raise CampaignError("Choose at least one channel.")
    out = []
    for c in channels:
        try:
            out.append({"name": str(c["name"]).strip()[:32], "cost": float(c["cost"]),
                        "effect_factor": float(c.get("effect_factor", 1.0))})
        except (KeyError, TypeError, ValueError) as error:
            raise CampaignError("Each channel needs a name and a cost per contact.") from error
    return out


def plan_inputs(campaign: Campaign) -> PlanInputs:
    try:
        return PlanInputs(
            channels=tuple(Channel(c["name"], float(c["cost"]), float(c.get("effect_factor", 1.0)))
                           for c in clean_channels(campaign.channels)),
            budget=float(campaign.budget), margin=float(campaign.margin), incentive_cost=float(campaign.incentive_cost),
            holdout_share=float(campaign.holdout_share), segment_caps=dict(campaign.segment_caps or {}),
            seed=int(campaign.holdout_seed)).validated()
    except PlanError as error:
        raise CampaignError(str(error)) from error


def _check_filters(filters: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise CampaignError(f"Unknown audience filter(s): {', '.join(unknown)}.")
    return {k: v for k, v in filters.items() if v not in (None, "", [])}


# ---------------------------------------------------------------------------------------------
# drafting and lifecycle
# ---------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if hasattr(value, "pk"):
        return value.pk
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@transaction.atomic
def campaign_create(*, user, name: str, goal: str, budget: float, **fields: Any) -> Campaign:
    if Campaign.objects.filter(name__iexact=name.strip()).exists():
        raise CampaignError(f"A campaign named {name!r} exists already.")
    fields.setdefault("channels", default_channels())
    fields["channels"] = clean_channels(fields["channels"])
    fields["filters"] = _check_filters(fields.get("filters") or {})
    fields.setdefault("fatigue_days", settings.CAMPAIGN_FATIGUE_DAYS)
    campaign = Campaign(name=name.strip(), goal=goal, budget=budget, created_by=_user(user),
                        holdout_seed=secrets.randbits(31), **fields)
    campaign.audience_name = campaign.audience.name if campaign.audience else ""
    plan_inputs(campaign)  # refuse impossible inputs before saving
    campaign.save()
    audit(campaign, user, "created", {k: _jsonable(getattr(campaign, k)) for k in EDITABLE_FIELDS})
    return campaign


def _discard_plan(campaign: Campaign) -> None:
    CampaignTarget.objects.filter(campaign=campaign).delete()
    campaign.plan = {}
    campaign.planned_at = None


@transaction.atomic
def campaign_update(campaign: Campaign, *, user, **fields: Any) -> Campaign:
    """Edit a campaign. An approved, submitted or rejected campaign goes back to draft; changing what decides
    the selection discards the plan. Exported campaigns are a record and cannot change."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status in (Status.EXPORTED, Status.MEASURED, Status.CLOSED):
        raise CampaignError("An exported campaign is a record of what was sent and cannot be edited; "
                            "create a new campaign instead.")
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise CampaignError(f"Not editable: {', '.join(sorted(unknown))}.")
    if "channels" in fields:
        fields["channels"] = clean_channels(fields["channels"])
    if "filters" in fields:
        fields["filters"] = _check_filters(fields["filters"] or {})
    if "name" in fields and Campaign.objects.filter(name__iexact=fields["name"].strip()).exclude(
            pk=campaign.pk).exists():
        raise CampaignError(f"A campaign named {fields['name']!r} exists already.")
    changes = {k: [_jsonable(getattr(campaign, k)), _jsonable(v)] for k, v in fields.items()
               if _jsonable(getattr(campaign, k)) != _jsonable(v)}
    if not changes:
        return campaign
    for k, v in fields.items():
        setattr(campaign, k, v)
    campaign.audience_name = campaign.audience.name if campaign.audience else ""
    plan_inputs(campaign)
    if set(changes) & set(PLAN_FIELDS):
        _discard_plan(campaign)
    previous = campaign.status
    if previous != Status.DRAFT:
        campaign.status = Status.DRAFT
        campaign.reviewed_by, campaign.reviewed_at = None, None
        changes["status"] = [previous, Status.DRAFT]
    campaign.save()
    audit(campaign, user, "edited", changes,
          comment="" if previous == Status.DRAFT else f"Edited while {previous}: back to draft, needs approval again.")
    return campaign


def _transition(campaign: Campaign, allowed: tuple[str, ...], new: str, user, action: str, comment: str = "",
                **extra: Any) -> Campaign:
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status not in allowed:
            raise CampaignError(f"Cannot {action} a campaign that is {locked.get_status_display().lower()}.")
        old = locked.status
        locked.status = new
        for k, v in extra.items():
            setattr(locked, k, v)
        locked.save()
        audit(locked, user, action, {"status": [old, new]}, comment)
    return locked


def campaign_submit(campaign: Campaign, *, user) -> Campaign:
    if not campaign.has_plan or not campaign.plan.get("totals", {}).get("contacts"):
        raise CampaignError("Plan the campaign first: there is no target list to approve yet.")
    return _transition(campaign, (Status.DRAFT,), Status.SUBMITTED, user, "submit")


def campaign_approve(campaign: Campaign, *, user, comment: str = "") -> Campaign:
    _require_admin(user, "approve")
    return _transition(campaign, (Status.SUBMITTED,), Status.APPROVED, user, "approve", comment.strip(),
                       reviewed_by=_user(user), reviewed_at=timezone.now(), review_comment=comment.strip())


def campaign_reject(campaign: Campaign, *, user, comment: str) -> Campaign:
    _require_admin(user, "reject")
    if not comment.strip():
        raise CampaignError("Say why the campaign is rejected (a comment is required).")
    return _transition(campaign, (Status.SUBMITTED,), Status.REJECTED, user, "reject", comment.strip(),
                       reviewed_by=_user(user), reviewed_at=timezone.now(), review_comment=comment.strip())


def campaign_close(campaign: Campaign, *, user, comment: str = "") -> Campaign:
    _require_admin(user, "close")
    return _transition(campaign, (Status.EXPORTED, Status.MEASURED), Status.CLOSED, user, "close", comment.strip())


# ---------------------------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------------------------


def audience_frame(campaign: Campaign) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The campaign's audience with every score the planner uses, indexed by customer pk."""
    if campaign.audience_id is None and campaign.audience_name:
        raise CampaignError(f"The saved audience “{campaign.audience_name}” was deleted: edit the campaign and "
                            "choose its audience again.")
    mv = uplift_selectors.active_version()
    if mv is None:
        raise CampaignError("There is no active uplift model: train one (Uplift page) before planning.")
    pks = customer_selectors.audience_customer_ids(campaign.audience) if campaign.audience_id else None
    frame = uplift_selectors.scores_frame(mv, pks)
    models = {"uplift": mv.version}
    seg_mv = segmentation_selectors.active_version()
    if seg_mv is not None:
        frame = frame.join(segmentation_selectors.segment_frame(seg_mv), how="left")
        models["segmentation"] = seg_mv.version
    churn_mv = churn_selectors.active_version()
    if churn_mv is not None:
        frame = frame.join(churn_selectors.probabilities_frame(churn_mv), how="left")
        models["churn"] = churn_mv.version
    cltv_mv = cltv_selectors.active_version()
    if cltv_mv is not None:
        frame = frame.join(cltv_selectors.value_frame(cltv_mv), how="left")
        models["cltv"] = cltv_mv.version
    frame = frame.join(customer_selectors.customer_frame(), how="left")
    for col in ("segment", "cluster_name"):
        if col not in frame:
            frame[col] = ""
        frame[col] = frame[col].fillna("").astype(object)
    for col in ("cluster", "churn_risk", "clv", "p_alive"):
        if col not in frame:
            frame[col] = np.nan
    info = {"scored": len(frame), "models": models}
    keep = np.ones(len(frame), bool)
    needs = {"segments": ("segment", seg_mv), "clusters": ("cluster", seg_mv),
             "min_churn_risk": ("churn_risk", churn_mv), "max_churn_risk": ("churn_risk", churn_mv),
             "min_clv": ("clv", cltv_mv), "min_p_alive": ("p_alive", cltv_mv)}
    spec = {"segments": campaign.segments, "clusters": campaign.clusters, **(campaign.filters or {})}
    for key, value in spec.items():
        if value in (None, "", []):
            continue
        if key in needs and needs[key][1] is None:
            raise CampaignError(f"The audience uses {key.replace('_', ' ')}, but that model has no active version.")
        if key == "segments":
            keep &= frame["segment"].isin(value).to_numpy()
        elif key == "clusters":
            keep &= frame["cluster"].isin([int(v) for v in value]).to_numpy()
        elif key == "min_churn_risk":
            keep &= (frame["churn_risk"] >= float(value)).to_numpy()
        elif key == "max_churn_risk":
            keep &= (frame["churn_risk"] <= float(value)).to_numpy()
        elif key == "min_clv":
            keep &= (frame["clv"] >= float(value)).to_numpy()
        elif key == "min_p_alive":
            keep &= (frame["p_alive"] >= float(value)).to_numpy()
        elif key == "uplift_groups":
            keep &= frame["group"].isin(value).to_numpy()
        elif key == "countries":
            keep &= frame["country"].str.lower().isin([c.lower() for c in value]).to_numpy()
    frame = frame[keep].sort_index()
    info["audience"] = len(frame)
    return frame, info


def fatigued_customers(campaign: Campaign) -> set[int]:
    """Customers contacted in the last ``fatigue_days``: by another exported campaign or an imported one."""
    since = timezone.now() - timedelta(days=campaign.fatigue_days)
    recent = set(CampaignTarget.objects.filter(
        arm=CampaignTarget.Arm.CONTACT, campaign__exported_at__gte=since).exclude(campaign=campaign)
        .values_list("customer_id", flat=True))
    return recent | customer_selectors.recently_contacted(since)


def compute_plan(frame: pd.DataFrame, inputs: PlanInputs, fatigued: set[int] | None = None) -> dict[str, Any]:
    """Pure-ish planning over an audience frame (see ``audience_frame``): allocation, naive rules, segment
    summaries, holdout, power. Returns the plan summary and per-target arrays."""
    n = len(frame)
    group = frame["group"].to_numpy(dtype=object)
    profit, spend, uplift_k = pipeline.option_values(frame["uplift"].to_numpy(float), frame["baseline"].to_numpy(float),
                                                     frame["revenue_uplift"].to_numpy(float), inputs)
    dogs = group == pipeline.SLEEPING_DOG
    tired = frame.index.isin(list(fatigued)) if fatigued else np.zeros(n, bool)
    eligible = ~dogs & ~tired
    segments = frame["segment"].to_numpy(dtype=object)
    alloc = pipeline.allocate(profit, spend, eligible, inputs.budget, segments=segments,
                              caps=inputs.segment_caps or None)
    selected = alloc.selected
    rows = np.flatnonzero(selected)
    chosen = alloc.channel[rows]
    holdout = pipeline.draw_holdout(len(rows), inputs.holdout_share, inputs.seed)
    cheapest = int(np.argmin([c.cost for c in inputs.channels]))
    rules = {"everyone": np.random.default_rng(inputs.seed).random(n),
             "likely_buyers": frame["baseline"].to_numpy(float)}
    if frame["churn_risk"].notna().any():
        rules["churn_risk"] = frame["churn_risk"].fillna(-1.0).to_numpy(float)
    naive = pipeline.naive_rules(profit, spend, cheapest, inputs.budget, rules)
    naive_curves = {}
    for name, score in rules.items():
        order = np.argsort(-score, kind="stable")
        cs, cp = np.cumsum(spend[order, cheapest]), np.cumsum(profit[order, cheapest])
        idx = np.unique(np.linspace(0, max(n - 1, 0), min(200, max(n, 1))).astype(np.int64)) if n else []
        naive_curves[name] = {"spend": [0.0, *cs[idx].tolist()], "profit": [0.0, *cp[idx].tolist()]}
    plan_profit = np.zeros(n)
    plan_profit[rows] = profit[rows, chosen]
    first_profit, first_uplift = profit[:, cheapest], uplift_k[:, cheapest]
    seg_args = (frame["uplift"].to_numpy(float), frame["uplift_low"].to_numpy(float),
                frame["uplift_high"].to_numpy(float), first_profit, first_uplift, group, selected, plan_profit)
    seg_labels = np.where(segments == "", "(no segment)", segments)
    clusters = frame["cluster_name"].to_numpy(dtype=object)
    contact_rows = rows[~holdout]
    base_rate = float(frame["baseline"].to_numpy(float)[rows].mean()) if len(rows) else 0.0
    channel_names = [c.name for c in inputs.channels]
    totals = {
        "audience": n, "sleeping_dogs": int(dogs.sum()), "fatigued": int(tired.sum()), "eligible": int(eligible.sum()),
        "selected": len(rows), "contacts": len(contact_rows), "holdout": int(holdout.sum()),
        "budget": inputs.budget, "spend": alloc.spend, "profit": alloc.profit, "lp_bound": alloc.lp_bound,
        "contact_spend": float(spend[contact_rows, alloc.channel[contact_rows]].sum()),
        "contact_profit": float(profit[contact_rows, alloc.channel[contact_rows]].sum()),
        "incremental_conversions": float(uplift_k[rows, chosen].sum()),
        "roi": alloc.profit / alloc.spend if alloc.spend else None,
    }
    return {
        "summary": {
            "totals": totals,
            "by_channel": {name: int((chosen == k).sum()) for k, name in enumerate(channel_names)},
            "curve": {"spend": alloc.curve_spend.tolist(), "profit": alloc.curve_profit.tolist()},
            "naive": naive, "naive_curves": naive_curves, "naive_channel": channel_names[cheapest],
            "segments": pipeline.segment_summary(seg_labels, *seg_args) if n else [],
            "clusters": pipeline.segment_summary(np.where(clusters == "", "(no cluster)", clusters), *seg_args)
            if n else [],
            "mde": pipeline.minimum_detectable_effect(len(contact_rows), int(holdout.sum()), base_rate),
            "base_rate": base_rate, "knapsack_note": KNAPSACK_NOTE,
        },
        "rows": rows, "channel": chosen, "holdout": holdout, "profit": profit[rows, chosen],
        "spend": spend[rows, chosen], "effect": uplift_k[rows, chosen], "channel_names": channel_names,
    }


def template_for(goal: str, segment: str, override: MessageTemplate | None = None) -> MessageTemplate | None:
    if override is not None:
        return override
    qs = MessageTemplate.objects.filter(goal=goal)
    return qs.filter(segment=segment).first() or qs.filter(segment="").first()


def message_values(campaign: Campaign, known: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The whitelisted placeholder values of each customer (see pipeline.PLACEHOLDERS); ``known``: pk →
    external_id, segment, cluster_name, country (already read for the plan)."""
    pks = list(known)
    facts = customer_selectors.message_facts(pks)
    skus = sorted({f["favourite_sku"] for f in facts.values() if f["favourite_sku"]})
    recs = embeddings_selectors.recommended_products(skus)
    out = {}
    for pk in pks:
        f, row = facts.get(pk, {}), known[pk]
        out[pk] = {"customer_id": row["external_id"], "segment": row["segment"] or "",
                   "cluster": row["cluster_name"] or "", "favourite_category": f.get("favourite_category", ""),
                   "days_since_last_order": f.get("days_since_last_order"), "country": row["country"] or "",
                   "offer": campaign.offer, "recommended_products": ", ".join(recs.get(f.get("favourite_sku"), []))}
    return out


def render_for(template: MessageTemplate | None, values: dict[str, Any]) -> str:
    if template is None:
        return ""
    text = (template.subject + "\n" if template.subject else "") + template.body
    return pipeline.render_message(text, values)


def plan_campaign(campaign: Campaign, *, user=None, reporter: ProgressReporter | None = None) -> Campaign:
    """Score the audience, allocate the budget, draw the holdout, render messages and store the targets."""
    progress = reporter or _Silent()
    if campaign.status not in (Status.DRAFT, Status.REJECTED):
        raise CampaignError("Only a draft (or rejected) campaign can be planned; edit it to plan again.")
    inputs = plan_inputs(campaign)
    progress.report(5, "Reading the audience and its scores")
    frame, info = audience_frame(campaign)
    if frame.empty:
        raise CampaignError("The audience is empty: no scored customer matches it.")
    progress.report(35, f"{len(frame):,} customers in the audience; allocating the budget")
    result = compute_plan(frame, inputs, fatigued_customers(campaign))
    summary = result["summary"]
    summary["models"] = info["models"]
    summary["scored"] = info["scored"]
    rows, holdout = result["rows"], result["holdout"]
    pks = frame.index.to_numpy()[rows]
    progress.report(55, f"{len(rows):,} customers selected; writing messages")
    contact = frame.iloc[rows[~holdout]][["external_id", "segment", "cluster_name", "country"]]
    values = message_values(campaign, {int(pk): dict(zip(contact.columns, vals, strict=True))
                                       for pk, vals in zip(contact.index, contact.itertuples(index=False),
                                                           strict=True)})
    templates: dict[str, MessageTemplate | None] = {}
    segments = frame["segment"].to_numpy(dtype=object)[rows]
    warnings = []
    targets = []
    for i, pk in enumerate(pks):
        seg = str(segments[i])
        if seg not in templates:
            templates[seg] = template_for(campaign.goal, seg, campaign.template)
        arm = CampaignTarget.Arm.HOLDOUT if holdout[i] else CampaignTarget.Arm.CONTACT
        message = "" if holdout[i] else render_for(templates[seg], values[int(pk)])
        targets.append(CampaignTarget(
            campaign=campaign, customer_id=int(pk), arm=arm, channel=result["channel_names"][result["channel"][i]],
            segment=seg, predicted_effect=float(result["effect"][i]), expected_profit=float(result["profit"][i]),
            spend=float(result["spend"][i]), message=message))
    if any(t is None for t in templates.values()):
        warnings.append(f"No message template for goal '{campaign.get_goal_display()}': some messages are empty.")
    summary["warnings"] = warnings
    summary["templates"] = {seg: (t.name if t else None) for seg, t in templates.items()}
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status not in (Status.DRAFT, Status.REJECTED):
            raise CampaignError("The campaign changed state while it was being planned; plan it again.")
        CampaignTarget.objects.filter(campaign=locked).delete()
        for start in range(0, len(targets), TARGET_BATCH):
            CampaignTarget.objects.bulk_create(targets[start:start + TARGET_BATCH])
            progress.report(60 + 35 * min(start + TARGET_BATCH, len(targets)) // len(targets),
                            f"{min(start + TARGET_BATCH, len(targets)):,} of {len(targets):,} targets stored")
        old = locked.status
        locked.plan = summary
        locked.planned_at = timezone.now()
        locked.status = Status.DRAFT
        locked.save(update_fields=["plan", "planned_at", "status", "updated_at"])
        t = summary["totals"]
        audit(locked, user, "planned", {"contacts": t["contacts"], "holdout": t["holdout"],
                                        "expected_profit": round(t["profit"], 2), "spend": round(t["spend"], 2),
                                        **({"status": [old, Status.DRAFT]} if old != Status.DRAFT else {})})
    progress.report(100, f"Planned: {t['contacts']:,} to contact, {t['holdout']:,} held out")
    return locked


def set_plan_job(campaign: Campaign, job) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(plan_job=job)


# ---------------------------------------------------------------------------------------------
# exports and results
# ---------------------------------------------------------------------------------------------

EXPORT_COLUMNS = ("customer_id", "channel", "message", "predicted_effect", "expected_profit", "segment")
HOLDOUT_COLUMNS = ("customer_id", "segment")


def export_targets(campaign: Campaign, *, user, fmt: str, arm: str = CampaignTarget.Arm.CONTACT
                   ) -> Iterator[dict[str, Any]]:
    """Rows of the approved target list (contact arm) or the holdout list; logs the export and marks the
    campaign exported. Admins only; only approved (or already exported) campaigns."""
    _require_admin(user, "export")
    if not campaign.exportable:
        raise CampaignError("Only an approved campaign can be exported.")
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        changes = {"format": fmt, "list": arm,
                   "rows": CampaignTarget.objects.filter(campaign=locked, arm=arm).count()}
        if locked.status == Status.APPROVED:
            locked.status = Status.EXPORTED
            locked.exported_at = timezone.now()
            locked.save(update_fields=["status", "exported_at", "updated_at"])
            changes["status"] = [Status.APPROVED, Status.EXPORTED]
        audit(locked, user, "export", changes)
    columns = EXPORT_COLUMNS if arm == CampaignTarget.Arm.CONTACT else HOLDOUT_COLUMNS
    qs = (CampaignTarget.objects.filter(campaign=campaign, arm=arm).order_by("id")
          .values_list("customer__external_id", "channel", "message", "predicted_effect", "expected_profit",
                       "segment"))
    for eid, channel, message, effect, profit, segment in qs.iterator(chunk_size=5000):
        row = {"customer_id": eid, "channel": channel, "message": message, "predicted_effect": round(effect, 6),
               "expected_profit": round(profit, 4), "segment": segment}
        yield {k: row[k] for k in columns}


def campaign_measure(campaign: Campaign, *, user) -> Campaign:
    """Realised uplift and profit from the outcomes imported under the campaign's name (campaign-history import)."""
    if campaign.status not in (Status.EXPORTED, Status.MEASURED):
        raise CampaignError("Results can be measured once the campaign has been exported.")
    outcomes = customer_selectors.campaign_outcomes(campaign.name)
    if not outcomes:
        raise CampaignError(f"No outcomes imported yet for '{campaign.name}': import the campaign history (Imports "
                            "page, kind 'campaign history') with this campaign name.")
    targets = list(CampaignTarget.objects.filter(campaign=campaign).values_list("customer_id", "arm", "channel",
                                                                               "predicted_effect"))
    cost = {c["name"]: float(c["cost"]) for c in campaign.channels}
    c_conv, c_rev, h_conv, h_rev, predicted = [], [], [], [], []
    spend = 0.0
    missing = 0
    for pk, arm, channel, effect in targets:
        if pk not in outcomes:
            missing += 1
            continue
        conv, rev = outcomes[pk]
        if arm == CampaignTarget.Arm.CONTACT:
            c_conv.append(conv)
            c_rev.append(rev)
            spend += cost.get(channel, 0.0)
            predicted.append(effect)
        else:
            h_conv.append(conv)
            h_rev.append(rev)
    try:
        results = pipeline.measured_results(np.array(c_conv), np.array(c_rev), np.array(h_conv), np.array(h_rev),
                                            spend, campaign.incentive_cost, campaign.margin)
    except PlanError as error:
        raise CampaignError(str(error)) from error
    results.update(predicted_uplift=float(np.mean(predicted)) if predicted else None, missing_outcomes=missing,
                   predicted_profit=campaign.plan.get("totals", {}).get("contact_profit"))
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        old = locked.status
        locked.results = results
        locked.measured_at = timezone.now()
        locked.status = Status.MEASURED
        locked.save(update_fields=["results", "measured_at", "status", "updated_at"])
        audit(locked, user, "measure", {"status": [old, Status.MEASURED], "uplift": round(results["uplift"], 4),
                                        "incremental_profit": round(results["incremental_profit"], 2)})
    return locked


# ---------------------------------------------------------------------------------------------
# message templates
# ---------------------------------------------------------------------------------------------


def _check_template(subject: str, body: str) -> None:
    try:
        pipeline.template_fields(subject)
        pipeline.template_fields(body)
    except TemplateError as error:
        raise CampaignError(str(error)) from error
    if not body.strip():
        raise CampaignError("The message body is empty.")


def template_save(*, user, template: MessageTemplate | None = None, **fields: Any) -> MessageTemplate:
    _require_admin(user, "manage message templates of")
    _check_template(fields.get("subject", ""), fields.get("body", ""))
    template = template or MessageTemplate(created_by=_user(user))
    for k, v in fields.items():
        setattr(template, k, v)
    template.save()
    return template


def template_delete(template: MessageTemplate, *, user) -> None:
    _require_admin(user, "manage message templates of")
    template.delete()


def preview(campaign: Campaign, template: MessageTemplate | None, customer_pk: int) -> dict[str, Any]:
    """The message a customer would get (whitelisted fields only), for any customer with an uplift score."""
    mv = uplift_selectors.active_version()
    facts = embeddings_selectors.customer_facts([customer_pk])
    if customer_pk not in facts:
        raise CampaignError("No such customer.")
    values = message_values(campaign, facts)[customer_pk]
    template = template or template_for(campaign.goal, values["segment"], campaign.template)
    return {"values": values, "template": template, "message": render_for(template, values),
            "uplift_model": mv.version if mv else None}
