"""Tests for bot.reply_policy: what a public answer may contain, before anything is published."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.answer_rules import EMPTY_PROBLEM, MAX_WEIGHTED_LENGTH, published_text, weighted_length
from bot.config import ConfigError, load_settings
from bot.reply_policy import (
    CARD_PROBLEM,
    DM_NOTE,
    EMAIL_PROBLEM,
    PHONE_PROBLEM,
    ReplyPolicy,
    check_reply,
    link_hosts,
    luhn_valid,
    normalize_domain,
    parse_terms,
    signature_for,
    signer,
)
from bot.takeover import SendOutcome, SendResult, answer_now, send_proposal_now
from bot.voting import ProposeOutcome, propose, select_proposal
from storage.models import Question, Reply
from tests.dbhelpers import T0, make_proposal, make_question, migrated_sessions

POLICY = ReplyPolicy(
    allowed_link_domains=frozenset({"acme.com", "Status.Acme.IO"}),
    deny_terms=("guaranteed", "free money", "C++"),
)
NO_LINKS = ReplyPolicy()


def fullwidth(text: str) -> str:
    """``text`` in full-width forms (as some keyboards type Latin letters)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def problems(
    text: str, policy: ReplyPolicy = POLICY, *, signature: str | None = None, is_dm: bool = False
) -> tuple[str, ...]:
    return check_reply(text, policy, signature=signature, is_dm=is_dm).problems


# -- personal data ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # e-mail addresses
        ("Write to jane.doe@example.com please", EMAIL_PROBLEM),
        ("Mail SUPPORT+care@acme.co.uk", EMAIL_PROBLEM),
        ("Écrivez à zoë@exemple.fr", EMAIL_PROBLEM),
        # phone numbers, international and local
        ("Call +1 (555) 123-4567 today", PHONE_PROBLEM),
        ("Call +44 20 7946 0958", PHONE_PROBLEM),
        ("Ruf an: +49 30 123456", PHONE_PROBLEM),
        ("Call 0044 20 7946 0958", PHONE_PROBLEM),
        ("Call (555) 123-4567", PHONE_PROBLEM),
        ("Call 555-123-4567", PHONE_PROBLEM),
        ("Call 555.123.4567", PHONE_PROBLEM),
        ("Call 555-1234", PHONE_PROBLEM),
        ("Appelez le 06 12 34 56 78", PHONE_PROBLEM),
        ("Call 1-800-356-9377", PHONE_PROBLEM),
        ("tel:5551234567", PHONE_PROBLEM),
        ("Reference 12345678", PHONE_PROBLEM),  # an unmarked number may be a phone number
        # card numbers (Luhn-valid, 13-19 digits)
        ("Card 4111 1111 1111 1111 on file", CARD_PROBLEM),
        ("Card 4111-1111-1111-1111", CARD_PROBLEM),
        ("Card 4111111111111111", CARD_PROBLEM),
        ("Amex 3782 822463 10005", CARD_PROBLEM),
        ("Card 4222222222222 (13 digits)", CARD_PROBLEM),
        ("Ref 12 4111 1111 1111 1111", CARD_PROBLEM),
    ],
)
def test_personal_data_is_refused(text: str, problem: str) -> None:
    assert problem in problems(text)


@pytest.mark.parametrize(
    "text",
    [
        "Your order #1234567 ships today",  # order numbers are written with #
        "Order #12345, item #98765432",
        "It costs $1 299 000",
        "It costs 1.299.000 €",
        "It costs EUR 1 234 567",
        "A 1 234 567% increase",
        "Delivered on 2024-05-01",
        "Delivered on 01.05.2024",
        "Delivered on 01-05-2024",
        "Open 10.30-11.45 and 9:00-17:00",
        "We're open 10:30 to 18:00",
        "Since 2019-2024 and 2019 2020 2021",
        "Sizes 36 38 40 42 44",
        "Pi is 3.14159265",
        "Product SKU-1234567 is back",
        "Call 1-800-FLOWERS",  # a vanity number has too few digits to be personal
        "Card 4111 1111 1111 1112",  # fails the Luhn check
        "See https://acme.com/orders/12345678",  # digits in an allowed link
        "Version 1.2.3, 2 items, 45 minutes",
        "Mail us at the contact form",
        "Follow @acme_help",
    ],
)
def test_near_misses_are_not_personal_data(text: str) -> None:
    found = problems(text)
    assert not {EMAIL_PROBLEM, PHONE_PROBLEM, CARD_PROBLEM} & set(found), found


@pytest.mark.parametrize("problem_text", ["a@b.example.com", "+1 555 123 4567", "4111111111111111"])
def test_personal_data_in_a_dm_only_when_the_policy_allows_it(problem_text: str) -> None:
    text = f"Here you go: {problem_text}"
    allowing = ReplyPolicy(personal_data_in_dm=True)

    assert check_reply(text, allowing, signature=None, is_dm=True).ok
    assert not check_reply(text, allowing, signature=None, is_dm=False).ok
    refused = check_reply(text, NO_LINKS, signature=None, is_dm=True)
    assert not refused.ok
    assert refused.problems[0].endswith(DM_NOTE)


def test_a_dm_still_gets_the_other_rules() -> None:
    allowing = ReplyPolicy(deny_terms=("guaranteed",), personal_data_in_dm=True)
    check = check_reply("Guaranteed! Call 555-1234", allowing, signature=None, is_dm=True)
    assert check.problems == (
        "Reword the answer without “guaranteed”: replies must not use this term.",
    )


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("378282246310005", True),
        ("5555555555554444", True),
        ("4111111111111112", False),
        ("79927398713", True),
        ("79927398710", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


# -- deny list ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("It is guaranteed to work", "guaranteed"),
        ("GUARANTEED delivery", "guaranteed"),
        ("Guaranteed.", "guaranteed"),
        ("Get free money now", "free money"),
        ("Get FREE\n  Money now", "free money"),
        (fullwidth("Guaranteed"), "guaranteed"),  # full-width letters are the same word
        ("We use C++ here", "c++"),
    ],
)
def test_deny_terms_are_named(text: str, term: str) -> None:
    found = problems(text)
    assert f"“{term}”" in " ".join(found), found


@pytest.mark.parametrize(
    "text",
    [
        "Unguaranteed results",  # inside another word
        "guaranteedly",
        "freemoney",
        "free moneys",
        "C# and C",
        "No denied words at all",
    ],
)
def test_deny_terms_match_whole_words_only(text: str) -> None:
    assert not any("Reword" in p for p in problems(text))


def test_several_deny_terms_are_named_in_one_problem() -> None:
    assert problems("Guaranteed free money!") == (
        "Reword the answer without “guaranteed”, “free money”: replies must not use these terms.",
    )


def test_a_quoted_term_carries_no_markup() -> None:
    policy = ReplyPolicy(deny_terms=("<!channel>",))
    [problem] = problems("ping <!channel> now", policy)
    assert "<" not in problem and ">" not in problem
    assert "!channel" in problem


# -- links --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "See https://acme.com/help",
        "See https://help.acme.com/a?b=1",
        "See HTTPS://WWW.ACME.COM/X",
        "See acme.com/help",
        "See status.acme.io",
        "See https://deep.status.acme.io:443/x",
        "See acme.com.",
        "No link here, just a sentence. And another.",
        "Version 2.0, file.txt and e.g. this",
    ],
)
def test_links_to_allowed_domains_pass(text: str) -> None:
    assert problems(text) == ()


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("See https://evil.com/x", "evil.com"),
        ("See evil.com", "evil.com"),  # X links bare domains
        ("See https://acme.com.evil.com", "acme.com.evil.com"),
        ("See https://notacme.com", "notacme.com"),
        ("See https://acme.io", "acme.io"),  # only status.acme.io is allowed
        ("See bit.ly/abc", "bit.ly"),
        ("See https://t.co/abc", "t.co"),
        ("See ftp://files.evil.com/x", "files.evil.com"),
        ("See http://localhost:8000/x", "localhost"),
    ],
)
def test_links_to_other_domains_are_refused_and_named(text: str, host: str) -> None:
    [problem] = problems(text)
    assert problem == (
        f"Remove the link to {host}: replies may link only to acme.com, status.acme.io "
        "(and their subdomains)."
    )


def test_no_allowed_domains_means_no_links_and_names_the_setting() -> None:
    [problem] = problems("See acme.com", NO_LINKS)
    assert "CARE_ALLOWED_LINK_DOMAINS" in problem
    assert problem.startswith("Remove the link to acme.com: replies may not contain links")


def test_several_bad_links_are_one_problem() -> None:
    [problem] = problems("See evil.com and https://bad.org/x and evil.com again")
    assert problem.startswith("Remove the links to evil.com, bad.org:")


def test_an_unsafe_host_is_not_echoed() -> None:
    [problem] = problems("See https://exa<mple.com/x")
    assert "<" not in problem


def test_link_hosts() -> None:
    assert link_hosts("a.com, https://B.com:8080/x?y and http://例え.jp/") == [
        "a.com",
        "b.com",
        "xn--r8jz45g.jp",
    ]


# -- length and signature -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "signature", "length"),
    [
        ("a" * 276, "^JS", 280),  # " ^JS" takes 4
        ("a" * 277, "^JS", 281),
        ("a" * 280, None, 280),
        ("a" * 280, "", 280),
        ("中" * 138, "^JS", 280),  # CJK counts 2
        ("中" * 139, "^JS", 282),
        ("😀" * 138, "^JS", 280),  # so does an emoji
        ("😀" * 139, "^JS", 282),
        ("a" * 274, "^山太", 280),  # " ^山太" takes 6
        ("a" * 275, "^山太", 281),
        ("a" * 232 + " https://acme.com/" + "x" * 50, "^JS", 260),  # a link counts 23
    ],
)
def test_length_counts_the_signature(text: str, signature: str | None, length: int) -> None:
    check = check_reply(text, POLICY, signature=signature, is_dm=False)
    assert check.weighted_length == length
    assert check.ok is (length <= MAX_WEIGHTED_LENGTH)


def test_too_long_with_a_signature_says_how_much_room_it_takes() -> None:
    [problem] = problems("a" * 280, signature="^JS")
    assert problem == (
        "With your signature (^JS, which takes 4 characters) the reply is 284 characters as X "
        "counts them (links count 23, CJK and emoji 2); the limit is 280. Shorten the answer by 4."
    )


def test_empty_answer() -> None:
    assert problems("  ", signature="^JS") == (EMPTY_PROBLEM,)


def test_published_text_is_answer_then_signature() -> None:
    assert published_text("  Thanks!\r\n", "^JS") == "Thanks! ^JS"
    assert published_text("Thanks!", None) == "Thanks!"
    assert published_text("", "^JS") == ""


@pytest.mark.parametrize(
    ("name", "fallback", "signature"),
    [
        ("Jane Smith", "", "^JS"),
        ("jane q. smith", "", "^JS"),
        ("Jean-Luc Picard", "", "^JP"),
        ("Mary O'Brien", "", "^MO"),
        ("Alice", "", "^AL"),
        ("Zoë Ångström", "", "^ZÅ"),
        (fullwidth("Jane Smith"), "", "^JS"),
        ("山田 太郎", "", "^山太"),
        ("山田太郎", "", "^山田"),
        ("Анна Петрова", "", "^АП"),
        ("  Jane 🌴 Smith 🚀 ", "", "^JS"),
        ("🌴🚀", "jsmith", "^JS"),
        ("", "jsmith", "^JS"),
        ("", "", ""),
        ("123 456", "", ""),
        ("ßtraße Öz", "", "^SSÖ"),  # "ß" uppercases to "SS"
        ("\u01c6emal Bey", "", "^DB"),  # the digraph "dž" is two letters
    ],
)
def test_signature_for(name: str, fallback: str, signature: str) -> None:
    assert signature_for(name, fallback) == signature


def test_signer_follows_the_current_setting() -> None:
    mode = ["off"]
    sign = signer(lambda: mode[0], {"U1": "Jane Smith", "U2": "🌴"}.get)
    assert sign("U1") is None
    mode[0] = "initials"
    assert sign("U1") == "^JS"
    assert sign("U2") is None
    assert sign("U3") is None


# -- configuration values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "domain"),
    [
        ("acme.com", "acme.com"),
        (" ACME.com. ", "acme.com"),
        ("*.acme.com", "acme.com"),
        ("例え.jp", "xn--r8jz45g.jp"),
        ("sub-1.acme.co.uk", "sub-1.acme.co.uk"),
    ],
)
def test_normalize_domain(raw: str, domain: str) -> None:
    assert normalize_domain(raw) == domain


@pytest.mark.parametrize(
    "raw", ["https://acme.com", "acme.com/help", "localhost", "acme..com", "-acme.com", "a b.com"]
)
def test_bad_domains_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        normalize_domain(raw)


def test_policy_normalizes_its_values() -> None:
    policy = ReplyPolicy(frozenset({"ACME.com"}), ("  Free   Money ", "free money", ""))
    assert policy.allowed_link_domains == frozenset({"acme.com"})
    assert policy.deny_terms == ("free money",)
    assert policy == ReplyPolicy(frozenset({"acme.com"}), ("free money",))


def test_parse_terms() -> None:
    assert parse_terms(" a, b ,,c ", ",") == ("a", "b", "c")
    assert parse_terms("# comment\nfree money\n\n  scam \n", "\n") == ("free money", "scam")


# -- properties ---------------------------------------------------------------------------------

SIGNATURES = st.one_of(st.none(), st.sampled_from(["^JS", "^山太", "^ABCD", "^Ö"]))
CARDS = st.sampled_from(
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "5555555555554444", "3782 822463 10005"]
)
EMAILS = st.from_regex(r"[a-z][a-z0-9._+-]{0,10}@[a-z]{1,10}\.[a-z]{2,5}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400), signature=SIGNATURES, is_dm=st.booleans())
def test_check_never_raises_and_accepted_text_fits(
    text: str, signature: str | None, is_dm: bool
) -> None:
    check = check_reply(text, POLICY, signature=signature, is_dm=is_dm)
    if check.ok:
        assert weighted_length(published_text(text, signature)) <= MAX_WEIGHTED_LENGTH
        assert check.weighted_length <= MAX_WEIGHTED_LENGTH
    else:
        assert check.problems
    for problem in check.problems:
        assert problem[0].isupper() and problem.endswith(".")


ACCEPTED = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=120)


@settings(max_examples=300, deadline=None)
@given(text=ACCEPTED, card=CARDS, at=st.integers(min_value=0, max_value=120))
def test_a_card_number_in_accepted_text_is_refused(text: str, card: str, at: int) -> None:
    if not check_reply(text, POLICY, signature=None, is_dm=False).ok:
        return
    spliced = f"{text[:at]} {card} {text[at:]}"
    assert CARD_PROBLEM in problems(spliced)


@settings(max_examples=300, deadline=None)
@given(text=ACCEPTED, email=EMAILS, at=st.integers(min_value=0, max_value=120))
def test_an_email_in_accepted_text_is_refused(text: str, email: str, at: int) -> None:
    if not check_reply(text, POLICY, signature=None, is_dm=False).ok:
        return
    spliced = f"{text[:at]} {email} {text[at:]}"
    assert EMAIL_PROBLEM in problems(spliced)


# -- in the domain: proposing, selecting and sending ----------------------------------------------


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


def question_of_kind(sessions: sessionmaker[Session], kind: str = "mention") -> int:
    with sessions.begin() as session:
        question = make_question(session)
        question.kind = kind
        return question.id


def test_a_signed_proposal_stores_its_signature_and_publishes_it(
    sessions: sessionmaker[Session],
) -> None:
    question_id = question_of_kind(sessions)
    with sessions.begin() as session:
        result = propose(
            session,
            question_id=question_id,
            author_id="U0JANE",
            text=" Thanks! ",
            now=T0,
            policy=POLICY,
            signature="^JS",
        )
        assert result.proposal is not None and result.question is not None
        assert (result.proposal.text, result.proposal.signature) == ("Thanks!", "^JS")
        reply = select_proposal(
            session, result.question, result.proposal, actor="U0BOB", now=T0, votes=1
        )
        assert reply.text == "Thanks! ^JS"


def test_personal_data_follows_the_questions_kind(sessions: sessionmaker[Session]) -> None:
    allowing = ReplyPolicy(personal_data_in_dm=True)
    text = "Call me back on +44 20 7946 0958"
    outcomes = {}
    for kind in ("mention", "dm"):
        question_id = question_of_kind(sessions, kind)
        with sessions.begin() as session:
            result = propose(
                session,
                question_id=question_id,
                author_id="U0A",
                text=text,
                now=T0,
                policy=allowing,
            )
            outcomes[kind] = result.outcome
    assert outcomes == {"mention": ProposeOutcome.INVALID, "dm": ProposeOutcome.ACCEPTED}


def test_send_now_checks_the_proposal_against_the_current_policy(
    sessions: sessionmaker[Session],
) -> None:
    question_id = question_of_kind(sessions)
    with sessions.begin() as session:
        question = session.get_one(Question, question_id)
        proposal_id = make_proposal(session, question, text="It is guaranteed.").id

    with sessions.begin() as session:
        refused = send_proposal_now(
            session, proposal_id=proposal_id, actor="U0MOD", now=T0, policy=POLICY
        )
    assert refused.outcome == SendOutcome.REFUSED
    assert refused.problems == (
        "Reword the answer without “guaranteed”: replies must not use this term.",
    )
    with sessions.begin() as session:
        assert session.get_one(Question, question_id).state == "open"
        assert session.scalar(select(Reply)) is None

    with sessions.begin() as session:
        sent = send_proposal_now(
            session, proposal_id=proposal_id, actor="U0MOD", now=T0, policy=NO_LINKS
        )
    assert sent == SendResult(SendOutcome.QUEUED)


def test_answer_now_is_signed_and_checked(sessions: sessionmaker[Session]) -> None:
    question_id = question_of_kind(sessions)
    with sessions.begin() as session:
        refused = answer_now(
            session,
            question_id=question_id,
            rep_id="U0REP",
            text="See evil.com",
            now=T0,
            policy=POLICY,
            signature="^RQ",
        )
        assert refused.outcome == ProposeOutcome.INVALID
    with sessions.begin() as session:
        answered = answer_now(
            session,
            question_id=question_id,
            rep_id="U0REP",
            text="Found it!",
            now=T0,
            policy=POLICY,
            signature="^RQ",
        )
        assert answered.outcome == ProposeOutcome.ACCEPTED
        assert session.scalars(select(Reply.text)).one() == "Found it! ^RQ"


# -- configuration -----------------------------------------------------------------------------


def test_the_policy_comes_from_the_environment(tmp_path: Path) -> None:
    terms = tmp_path / "deny.txt"
    terms.write_text("# one term per line\nfree money\n\n  Scam \n", encoding="utf-8")
    settings = load_settings(
        {
            "CARE_ALLOWED_LINK_DOMAINS": " Acme.com, status.acme.io ,",
            "CARE_DENY_TERMS": "guaranteed, risk-free",
            "CARE_DENY_TERMS_FILE": str(terms),
            "CARE_PERSONAL_DATA_IN_DM": "TRUE",
        },
        env_file=None,
    )
    assert settings.reply_policy == ReplyPolicy(
        frozenset({"acme.com", "status.acme.io"}),
        ("guaranteed", "risk-free", "free money", "scam"),
        personal_data_in_dm=True,
    )


def test_the_default_policy_allows_no_links_and_no_personal_data() -> None:
    assert load_settings({}, env_file=None).reply_policy == ReplyPolicy()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CARE_ALLOWED_LINK_DOMAINS": "https://acme.com"}, "CARE_ALLOWED_LINK_DOMAINS"),
        ({"CARE_ALLOWED_LINK_DOMAINS": "acme.com,localhost"}, "'localhost'"),
        ({"CARE_DENY_TERMS_FILE": "/nonexistent/deny.txt"}, "CARE_DENY_TERMS_FILE"),
        ({"CARE_PERSONAL_DATA_IN_DM": "yes"}, "CARE_PERSONAL_DATA_IN_DM"),
    ],
)
def test_bad_policy_settings_stop_start_up(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ, env_file=None)
