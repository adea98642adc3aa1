"""Pure rules, tested without HTTP or a database."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from convmem.identity import rules as identity
from convmem.kit import ids
from convmem.kit.errors import ProtectedResource, TraitLimitExceeded, ValidationFailed
from convmem.kit.pagination import decode_token, encode_token, page_request
from convmem.traits import rules
from convmem.traits.rules import TraitSpec
from tests.spec import check_response


def test_new_ids_are_valid_and_sort_by_creation() -> None:
    made = [ids.new_id(ids.STORE) for _ in range(1000)]
    assert made == sorted(made)
    assert all(ids.is_valid(ids.STORE_ID, i) for i in made)
    assert not ids.is_valid(ids.STORE_ID, made[0].upper())


def test_page_tokens_round_trip_and_reject_garbage() -> None:
    token = encode_token("ASC", "mem_store_x", backwards=True, scope="stores")
    assert decode_token(token) == ("ASC", "mem_store_x", True, "stores")
    for bad in ("", "abc", encode_token("ASC", "k", backwards=False)[:-3] + "!!!"):
        with pytest.raises(ValidationFailed):
            decode_token(bad or "=")
    assert page_request(10, None, "asc").order == "ASC"


def test_rule_type_must_match_data_type() -> None:
    with pytest.raises(ValidationFailed, match=r"traits.a.validationRule.ruleType"):
        rules.check_spec(
            "traits.a", TraitSpec("STRING", validation_rule={"ruleType": "NUMBER"}), id_types=set()
        )
    rules.check_spec(
        "traits.a",
        TraitSpec("ARRAY", validation_rule={"ruleType": "ARRAY", "minItems": 0, "maxItems": 0}),
        id_types=set(),
    )


def test_plan_patch_protects_and_limits() -> None:
    existing = {"email": TraitSpec("STRING", id_type_promotion="email"), "x": TraitSpec("STRING")}
    upserts, deletions = rules.plan_patch(
        existing, {"email"}, {"x": None, "y": TraitSpec("NUMBER")}, group="G", id_types={"email"}
    )
    assert deletions == ["x"] and set(upserts) == {"y"}
    with pytest.raises(ProtectedResource):
        rules.plan_patch(existing, {"email"}, {"email": None}, group="G", id_types={"email"})
    many = {f"t{n}": TraitSpec("STRING") for n in range(94)}
    with pytest.raises(TraitLimitExceeded):
        rules.plan_patch(existing, set(), many, group="G", id_types=set())


def test_identity_settings_checks() -> None:
    configs = [identity.complete_config({"idType": "email"})]
    assert configs[0]["normalization"] == "trim" and configs[0]["limit"] == 100
    identity.check_settings(configs, ["email"])
    with pytest.raises(ValidationFailed, match="matchingRules"):
        identity.check_settings(configs, ["phone"])
    with pytest.raises(ValidationFailed, match=r"Contact\.phone"):
        identity.check_promotions_kept({"Contact.phone": "phone"}, {"email"})


def test_the_spec_checker_rejects_a_wrong_body() -> None:
    request = httpx.Request(
        "GET", "http://x/v1/ControlPlane/Stores/mem_store_01h455vb4pex5vsknk084sn02q"
    )
    good = httpx.Response(
        200,
        json={
            "id": "mem_store_01h455vb4pex5vsknk084sn02q",
            "displayName": "a",
            "status": "ACTIVE",
            "intelligenceServiceId": None,
            "version": 1,
        },
        request=request,
    )
    check_response(good)
    bad = httpx.Response(200, json={"id": "nope", "status": "ALIVE"}, request=request)
    with pytest.raises(Exception, match=r"required|does not match|is not one of"):
        check_response(bad)
    bad_error = httpx.Response(401, json={"error": "nope"}, request=request)
    with pytest.raises(Exception, match=r"Additional properties|additional"):
        check_response(bad_error)


def test_resolution_plan_creates_updates_and_merges() -> None:
    from convmem.identity.resolution import IdConfig, plan

    configs = {
        "email": IdConfig("email"),
        "phone": IdConfig("phone"),
        "chat": IdConfig("chat", unique=False),
    }
    rules = ["email", "phone", "chat"]
    holders = {
        ("email", "a"): {"p2"},
        ("phone", "1"): {"p1"},
        ("chat", "x"): {"p3"},
        ("chat", "y"): {"p3"},
    }
    groups = plan(
        [
            [("email", "new")],  # no match: create
            [("email", "a")],  # one match: update p2
            [("email", "a"), ("phone", "1")],  # bridges p1 and p2: merge into p1
            [("chat", "x")],  # one non-unique value: no link
            [("chat", "x"), ("chat", "y")],  # two shared non-unique values: compound match
            [("email", "new")],  # same value as record 0 in this batch
        ],
        [None] * 6,
        holders,
        configs,
        rules,
    )
    by_record = {i: g for g in groups for i in g.records}
    assert by_record[0] is by_record[5] and by_record[0].canonical is None
    assert by_record[1] is by_record[2]
    assert by_record[2].profiles == ["p1", "p2"] and by_record[2].rules == {"p2": "email"}
    assert by_record[3].canonical is None
    assert by_record[4].canonical == "p3"


def test_normalization() -> None:
    from convmem.identity.normalize import InvalidIdentifier, normalize

    assert normalize(" Alyssa.Mock@Example.COM ", "email") == "alyssa.mock@example.com"
    assert normalize("(317) 555-1234", "phone") == "+13175551234"
    assert normalize("1-317-555-1234", "phone") == "+13175551234"
    assert normalize("44 20 7946 0958", "phone") == "+442079460958"
    assert normalize("+44 20 7946 0958", "phone") == "+442079460958"
    assert normalize("  x  ", "trim") == "x"
    assert normalize("  x  ", "none") == "  x  "
    for bad, how in (("nope", "phone"), ("a.b", "email"), ("   ", "trim")):
        with pytest.raises(InvalidIdentifier):
            normalize(bad, how)


def test_the_plus_one_fast_path_agrees_with_phonenumbers() -> None:
    """`normalize_phone` answers "+1" and ten digits without phonenumbers;
    phonenumbers must find every such number possible and format it the
    same, whatever its area code and exchange digits (0 and 1 included)."""
    import random

    import phonenumbers

    from convmem.identity.normalize import normalize_phone

    rng = random.Random(5)
    for area in range(10):
        for exchange in range(10):
            for _ in range(20):
                digits = f"{area}{rng.randrange(100):02d}{exchange}{rng.randrange(10**6):06d}"
                number = phonenumbers.parse("+1" + digits, None)
                assert phonenumbers.is_possible_number(number)
                expected = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                assert normalize_phone("+1" + digits) == expected
                if not digits.startswith("00"):  # "00" is the international prefix
                    assert normalize_phone(digits) == expected  # ten digits: a US number
    # Anything else still goes through phonenumbers: eleven digits after +1
    # are not a possible number.
    from convmem.identity.normalize import InvalidIdentifier

    with pytest.raises(InvalidIdentifier, match="not a possible phone number"):
        normalize_phone("+1 317 555 12345")
