"""Every admin call that replaces the serving model is in the promotions audit, with the key
that made it (a digest) and the champion it replaced: PUT and DELETE configurations/policy,
PUT and DELETE model, and a change of the reward settings (which starts a fresh model). A change
that keeps the model (the export frequency) leaves no row."""

from __future__ import annotations

import hashlib

import httpx

from tests.conftest import ADMIN_KEY, Server

POLICY = "--cb_explore_adf --epsilon 0.2 --power_t 0 -l 0.01 --cb_type ips -q ::"
KEY_DIGEST = f"admin:{hashlib.sha256(ADMIN_KEY.encode()).hexdigest()[:12]}"


def _audit(server: Server) -> list[dict]:
    answer = httpx.get(
        f"{server.url}/admin/promotions", headers={"Ocp-Apim-Subscription-Key": ADMIN_KEY}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["value"]


def _champion(db) -> tuple[int, str]:
    return db.execute("SELECT id, name FROM policies WHERE role = 'champion'").fetchone()


def test_every_change_of_the_serving_model_is_audited(server: Server, db) -> None:
    assert _audit(server) == []
    changes: list[tuple[str, int, int]] = []  # (action, previous id, new id)

    def changed(action: str, call) -> None:
        before = _champion(db)[0]
        answer = call()
        assert answer.status_code in (200, 204), answer.text
        changes.append((action, before, _champion(db)[0]))

    with server.admin() as admin:
        changed(
            "policy",
            lambda: admin.put("/configurations/policy", json={"name": "mine", "arguments": POLICY}),
        )
        changed("resetPolicy", lambda: admin.delete("/configurations/policy"))
        model = admin.get("/model").content
        changed("import", lambda: admin.put("/model", content=model))
        changed("resetModel", lambda: admin.delete("/model"))
        before = len(_audit(server))
        server.configure(modelExportFrequency="PT2S")  # keeps the model: no row
        assert len(_audit(server)) == before
        changed("rewardSettings", lambda: _put_service(admin, rewardWaitTime="PT7S"))

    rows = list(reversed(_audit(server)))  # oldest first
    assert [r["action"] for r in rows] == [a for a, _, _ in changes]
    names = dict(db.execute("SELECT id, name FROM policies").fetchall())
    for row, (action, previous, new) in zip(rows, changes, strict=True):
        assert previous != new, action
        assert (row["source"], row["forced"], row["key"]) == ("admin", True, KEY_DIGEST), row
        assert (row["policy"], row["previousChampion"]) == (names[new], names[previous]), row
    assert rows[0]["evidence"]["arguments"] == POLICY
    imported = rows[2]["evidence"]
    assert imported["modelSha256"] == hashlib.sha256(model).hexdigest()
    assert imported["modelBytes"] == len(model)
    assert rows[4]["evidence"]["changed"] == {"rewardWaitTime": {"from": "PT10M", "to": "PT7S"}}
    # and rollback still undoes only a promotion
    answer = httpx.post(
        f"{server.url}/admin/policies/rollback", headers={"Ocp-Apim-Subscription-Key": ADMIN_KEY}
    )
    assert answer.status_code == 409, answer.text


def _put_service(admin: httpx.Client, **changes: object) -> httpx.Response:
    document = admin.get("/configurations/service").json()
    document.pop("latestApprenticeModeMetrics", None)
    document.update(changes)
    return admin.put("/configurations/service", json=document)
