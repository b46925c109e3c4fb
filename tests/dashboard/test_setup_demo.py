"""`make run` prepares the embedded demo with `setup_demo`: data, models and logins, once.

Run as `make run` runs it: a subprocess with DEBUG=1 and neither DATABASE_URL nor REDIS_URL, so the
embedded SQLite database and the memory broker. The rest of the suite is on PostgreSQL: a reader that
only PostgreSQL can run (COPY) passes there and breaks `make run`; this test is where it fails.
The services setup_demo calls (import, every trainer) are tested on PostgreSQL in their own apps. Then the
portal's pages are opened on that database as the demo admin, as `make run`'s `serve` would answer them: a page
that reads through PostgreSQL-only SQL fails here too.
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from django.contrib.auth.hashers import check_password

from rfm_portal.accounts.models import User
from rfm_portal.customers.models import CampaignHistory, Transaction
from rfm_portal.mlops.models import ModelVersion

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("segmentation", "cltv", "churn", "uplift", "embeddings")
# The demo generates 20,000 customers; 600 take the same code path in seconds: every reader and trainer, and a
# campaign whose arms are big enough for an uplift model (the T-learner; the forest needs more customers).
CUSTOMERS = 600


# Every page of the navigation, then the pages one click further that read the most (customer-360, churn lists,
# the campaign form, the lookalike builder): status and size of each are printed, one per line.
PAGE_WALK = """
import re
from django.test import Client
from rfm_portal.accounts.models import User
client = Client(HTTP_HOST="localhost")
client.force_login(User.objects.get(username="admin"))
home = client.get("/")
paths = sorted(set(re.findall(r'href="(/[^"#?]*)"', home.content.decode())) - {"/accounts/logout/"})
customers = client.get("/customers/").content.decode()
paths += sorted(set(re.findall(r'href="(/customers/[0-9]+/)"', customers)))[:2]
paths += ["/churn/customers/", "/churn/win-back/", "/campaigns/new/", "/lookalikes/builder/"]
for path in paths:
    if path.startswith("/static/"):
        continue
    response = client.get(path)
    print(response.status_code, len(response.content), path)
"""


def _env(var_dir: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""), "HOME": str(var_dir), "DEBUG": "1", "RFM_VAR_DIR": str(var_dir),
        # keep the suite fast: fewer epochs, PCA instead of t-SNE for the 2-D map (same training code path)
        "EMBEDDINGS_EPOCHS": "3", "EMBEDDINGS_MAP_METHOD": "pca",
    }


def manage(var_dir: Path, *args: str) -> str:
    """A management command as `make run` runs it; returns what it printed."""
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=_env(var_dir),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def setup_demo(var_dir: Path, *args: str) -> str:
    """`manage.py setup_demo` as `make run` runs it; returns what it printed."""
    return manage(var_dir, "setup_demo", *args)


def table(model) -> str:
    return model._meta.db_table


def test_setup_demo_on_the_embedded_sqlite_loads_data_trains_every_model_and_prints_working_logins(tmp_path):
    output = setup_demo(tmp_path, "--customers", str(CUSTOMERS), "--seed", "2024")

    database = tmp_path / "db.sqlite3"
    assert database.exists()  # the embedded default, not a server
    demo = tmp_path / "demo"
    lines = sum(1 for _ in open(demo / "demo.csv")) - 1
    campaign_rows = sum(1 for _ in open(demo / "demo_campaigns.csv")) - 1
    assert (demo / "demo_truth.csv").exists()  # written for evaluation, never imported
    logins = json.loads((tmp_path / "demo_logins.json").read_text())
    assert set(logins) == {User.Role.ADMIN, User.Role.ANALYST}
    with closing(sqlite3.connect(database)) as db:
        assert db.execute(f"SELECT count(*) FROM {table(Transaction)}").fetchone()[0] == lines > 0
        # customers acquired after the send are not in it
        assert db.execute(f"SELECT count(*) FROM {table(CampaignHistory)}").fetchone()[0] == campaign_rows < CUSTOMERS
        active = db.execute(f"SELECT kind FROM {table(ModelVersion)} WHERE status = ?",
                            [ModelVersion.Status.ACTIVE]).fetchall()
        assert sorted(kind for (kind,) in active) == sorted(KINDS), output
        users = dict(db.execute(f"SELECT username, password FROM {table(User)}").fetchall())
        roles = dict(db.execute(f"SELECT username, role FROM {table(User)}").fetchall())
    for role, password in logins.items():
        assert f"password: {password}" in output
        assert roles[role] == role and check_password(password, users[role])  # the printed login works
    for kind in KINDS:
        assert f"Training {kind} …" in output

    second = setup_demo(tmp_path)  # every later `make run`
    assert "not importing again" in second
    assert all(f"{kind}: v1 already active" in second for kind in KINDS), second
    assert all(f"password: {password}" in second for password in logins.values())
    with closing(sqlite3.connect(database)) as db:
        assert db.execute(f"SELECT count(*) FROM {table(Transaction)}").fetchone()[0] == lines
        assert db.execute(f"SELECT count(*) FROM {table(ModelVersion)} WHERE version != 1").fetchone()[0] == 0

    # the pages `make run` then serves, on the same SQLite database
    walked = manage(tmp_path, "shell", "--no-imports", "-c", PAGE_WALK)
    pages = [line.split(" ", 2) for line in walked.splitlines() if re.match(r"\d{3} \d+ /", line)]
    paths = {path for _status, _size, path in pages}
    assert {"/customers/", "/churn/", "/cltv/", "/segments/", "/uplift/", "/lookalikes/", "/campaigns/",
            "/live/", "/models/"} <= paths, paths
    assert sum(path.startswith("/customers/") and path[11:-1].isdigit() for path in paths) == 2  # customer-360
    failed = [(status, path) for status, _size, path in pages if status != "200"]
    assert not failed, failed
    assert all(int(size) > 1000 for _status, size, _path in pages), pages
