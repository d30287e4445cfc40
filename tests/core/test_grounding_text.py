"""The one sentence splitter and the structure of a chunk (sentences, list items, rows), typos,
two-part questions, follow-up memory and the hand-off texts: no model needed."""

import pytest

from ragtune.answer import contract_shape
from ragtune.grounding.followup import Said, points_back, question_parts, tried
from ragtune.grounding.messages import detect_language, message
from ragtune.grounding.spelling import Speller, edit_distance
from ragtune.grounding.text import row_sentence, split_sentences, units
from ragtune.prompt import ContextChunk, build_messages, number_sources


def test_sentences_are_verbatim_and_fragments_join_the_next_one():
    text = "Yes. Switching from monthly to annual takes effect immediately.\nSwitching back takes effect at the end of the paid year."
    assert split_sentences(text) == [
        "Yes. Switching from monthly to annual takes effect immediately.",
        "Switching back takes effect at the end of the paid year.",
    ]
    # A decimal point is not a sentence end; a short fragment at the end joins the sentence before it.
    assert split_sentences("Pro costs 9.99 EUR per month. Business costs more per user. Not Free.") == [
        "Pro costs 9.99 EUR per month.",
        "Business costs more per user. Not Free.",
    ]


def test_headings_left_inline_by_pdf_extraction_are_kept_apart():
    text = (
        "Annual plans\nIf you are not satisfied, you can cancel an annual plan within 30 days of the purchase and\n"
        "receive a full refund.\n\nMonthly plans\nMonthly plans can be cancelled at any time."
    )
    found = [(u.heading, u.text) for u in units(text)]
    assert found == [
        (
            "Annual plans",
            "If you are not satisfied, you can cancel an annual plan within 30 days of the purchase and receive a full refund.",
        ),
        ("Monthly plans", "Monthly plans can be cancelled at any time."),
    ]


def test_list_items_know_their_list_lead_in_and_place():
    text = "To restore a file:\n\n1. Open the web app.\n2. Go to Trash.\n3. Choose Restore."
    found = units(text)
    assert [u.kind for u in found] == ["sentence", "item", "item", "item"]
    assert [(u.index, u.lead) for u in found[1:]] == [
        (1, "To restore a file:"),
        (2, "To restore a file:"),
        (3, "To restore a file:"),
    ]
    # A numbered list written on one line is a list too (not "4. Restart the desktop app." as a sentence).
    inline = units(
        "Try these. 1. Sign in again. 2. Pause and resume sync. 3. Check the file is not locked. 4. Restart the desktop app."
    )
    assert [u.text for u in inline if u.kind == "item"][-1] == "Restart the desktop app."
    assert all(u.lead == "Try these." for u in inline if u.kind == "item")


def test_a_spreadsheet_row_becomes_a_sentence_naming_its_columns():
    row = "Add-on: Onboarding workshop, Available on: Business, Enterprise, Price: 390 EUR once"
    assert [u.kind for u in units(row)] == ["row"]
    assert row_sentence(row) == "Onboarding workshop (add-on): available on Business, Enterprise; price 390 EUR once."
    assert [u.kind for u in units("Note: this is a sentence with a colon, not a row.")] == ["sentence"]


def test_typos_are_corrected_against_the_index_words_but_names_and_contractions_stay():
    speller = Speller.from_texts(["Schedule backups under Preferences. The camera upload needs access. Email support."])
    assert speller.correct("how do i shcedule backups") == "how do i schedule backups"
    assert speller.correct("camra upload broken") == "camera upload broken"
    assert (
        speller.correct("reset my gmail password") == "reset my gmail password"
    )  # not "email": names differ in the first letter
    assert speller.correct("i cant upload") == "i cant upload"
    assert edit_distance("shcedule", "schedule", 2) == 1 and edit_distance("abc", "xyz", 1) == 2


def test_a_question_asking_two_things_is_read_as_two_parts():
    assert question_parts("what does the business plan cost and what uptime do you guarantee for it") == [
        "what does the business plan cost",
        "what uptime do you guarantee for it",
    ]
    assert question_parts("I'm a teacher. How much off do I get, and does that plan include the Vault?") == [
        "I'm a teacher. How much off do I get",
        "does that plan include the Vault?",
    ]
    assert question_parts("can i pay by card and paypal") == ["can i pay by card and paypal"]
    assert question_parts("my sync is stuck. what should i do?") == ["my sync is stuck. what should i do?"]
    # "and" joins a second question to a problem the customer reports: two parts.
    assert question_parts("camera upload stopped working on my android, and does the scanner read german?") == [
        "camera upload stopped working on my android",
        "does the scanner read german?",
    ]
    assert question_parts("my trial ended and i have like 40gb, what happens to my files") == [
        "my trial ended and i have like 40gb, what happens to my files"
    ]


def test_follow_ups_point_back_and_what_was_said_is_remembered():
    assert points_back("does that work on the free plan too?") and points_back("and business?")
    assert not points_back("Can I pay with PayPal when I upgrade to Business?")
    said = Said(["Common fixes:\n1. Pause and resume sync from the icon menu.\n2. Restart the desktop app."])
    assert "Restart the desktop app." in said and "Send us the log file." not in said
    assert not Said([])


def test_steps_the_customer_says_they_took_count_as_said():
    question = "already updated and did the shift reset thing, still crashes"
    assert tried(question) == "already updated and did the shift reset thing, "
    said = Said(["Make sure you run the latest version."], done=tried(question), problem="the desktop app crashes after login")
    assert "Quit the app, then hold Shift while starting it to open the reset dialog and choose Reset settings." in said
    assert "Add the Northwind folder and the app to the antivirus exceptions." not in said
    # The problem the customer first described is not a step they took: "sync" is in both.
    synced = Said([], done=tried("i paused and resumed sync, still not syncing"), problem="one file wont sync")
    assert "Pause and resume sync from the icon menu." in synced and "Sync stops when the disk is full." not in synced
    assert not Said([], done=tried("i tried that, still stuck"))  # names no step: nothing more is left out


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Wie lange dauert die kostenlose Testphase?", "de"),
        ("Puis-je obtenir un remboursement?", "fr"),
        ("how long is the free trial?", "en"),
        ("Hoe lang duurt de proefperiode?", "en"),  # Dutch: answered in English, not taken for German
        ("contact support", "en"),  # too short to tell
    ],
)
def test_the_customer_language_is_detected_for_en_de_fr(text, language):
    assert detect_language(text) == language


def test_hand_off_texts_say_what_happens_and_the_operator_can_replace_them():
    text = message("no_answer", "en", "support@acme.example")
    assert "support@acme.example" in text and "handing you over" not in text
    assert "(see the contact option below)" in message("person", "en", "")
    assert message("no_answer", "de", "x@y.example").startswith("Das konnte ich")
    assert message("no_answer", "en", "", {"en.no_answer": "Ask us{contact_clause}."}) == "Ask us (see the contact option below)."
    steps = message("action_steps", "fr", "", answer="Ouvrez Réglages.")
    assert "Ouvrez Réglages." in steps


def test_numbered_ids_map_back_and_the_prompt_lists_them():
    chunks = [
        ContextChunk("7f26486b63c3c0e58487", "Refund policy", "Annual plans", "Refunds within 30 days."),
        ContextChunk("aa11bb22cc33dd44ee55", "Pricing", "Pro", "9.99 EUR per month."),
    ]
    numbered = number_sources(chunks)
    assert [c.id for c in numbered.chunks] == ["S1", "S2"]
    assert numbered.ids["S2"] == "aa11bb22cc33dd44ee55" and "S3" not in numbered.ids
    system = build_messages("refund?", numbered.chunks, [], "Acme")[0]["content"]
    assert "[id: S1] Refund policy > Annual plans" in system and "7f26486b" not in system
    assert contract_shape(["S1", "S2"]) in system and '"sources": ["S1" | "S2"]' in system


def test_a_hyphenated_word_matches_the_same_words_written_apart():
    # The documents write "two-factor", customers "two factor" (BM25 splits hyphens too).
    from ragtune.grounding.text import stems, words

    assert words("Two-factor authentication, end-to-end") == ["two", "factor", "authentication", "end", "to", "end"]
    assert set(stems("how do i turn on two factor")) <= set(stems("Two-factor authentication can be turned on"))
    assert words("don't") == ["don't"]  # a contraction stays one word
