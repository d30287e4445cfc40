"""The judged-form checks of evaluation/form.py on small made-up answers."""

import pytest

from evaluation.form import (
    detect_language,
    echoes,
    fragment_reason,
    has_contact,
    judge,
    negates,
    off_topic,
    quoted_from,
    repeated,
    repeats_previous,
    split_sentences,
    strip_filler,
)


def test_sentences_keep_list_items_abbreviations_and_a_bare_no_together():
    text = "Try these: 1. Sign in. 2. Pause sync, e.g. from the icon. No. The Vault is not on Free.\nSee Help > Export logs."
    assert split_sentences(text) == [
        "Try these: 1. Sign in.",
        "2. Pause sync, e.g. from the icon.",
        "No. The Vault is not on Free.",
        "See Help > Export logs.",
    ]
    assert split_sentences("Pro costs 9.99 EUR. Business costs 15 EUR!") == ["Pro costs 9.99 EUR.", "Business costs 15 EUR!"]


@pytest.mark.parametrize(
    ("sentence", "previous", "reason"),
    [
        ("4. Restart the desktop app.", None, "list_item"),
        ("4. Restart the desktop app.", "Pause and resume sync. 3. Check that the file is not open.", None),
        ("1. Make sure you are signed in.", None, None),
        ("9.99 EUR per month, or 99 EUR per year when paid annually.", None, "leading_number"),
        ("1 TB of storage for 1 user, unlimited devices.", None, "leading_number"),
        ("2FA can be turned on under Settings > Security.", None, None),
        ("24/7 support is available for priority 1 incidents.", None, None),
        ("if no email arrives within 10 minutes, check the spam folder.", None, "lowercase_start"),
        ("iOS 16 or later is needed.", None, None),
        ("app.northwind.example/signup is where you sign up.", None, None),
        ("Add-on: Extra 1 TB storage, Available on: Pro, Price per month (EUR): 4.99", None, "table_row"),
        ("Pro: 30 days.", None, "table_row"),
        ("Free: 10 GB, 1 user.", None, "table_row"),
        ("Try these steps: 1. Make sure you are signed in.", None, None),
        ("Good news: you can pay with Visa, Mastercard and PayPal.", None, None),
        ("Pro includes 1 TB of storage for 9.99 EUR per month.", None, None),
    ],
)
def test_fragments_are_sentences_that_start_mid_thought(sentence, previous, reason):
    assert fragment_reason(sentence, previous) == reason


def test_off_topic_sentences_share_nothing_with_the_question_and_the_first_sentence():
    question = "can i get a refund on my annual plan"
    sentences = [
        "You can cancel an annual plan within 30 days of purchase for a full refund.",
        "Refunds go back to the original payment method within 5 to 10 business days.",
        "Prices are shown without VAT.",
    ]
    assert off_topic(question, sentences) == ["Prices are shown without VAT."]
    # A back-reference continues the sentence before it.
    restore = ["Open the web app, go to Trash, select the files and click Restore.", "They return to their original folder."]
    assert off_topic("how do i get a deleted file back", restore) == []
    assert off_topic("how do i get a deleted file back", [restore[0], "Prices are shown without VAT."]) != []
    # Quoted from the same passage as the first sentence: on topic although the words differ.
    login = ["Use Forgot password on the sign-in page.", "The reset link is valid for 1 hour."]
    assert off_topic("I FORGOT MY PASSWORD", login) == ["The reset link is valid for 1 hour."]
    same = quoted_from([(login[0], "chunk-login"), (login[1], "chunk-login")])
    other = quoted_from([(login[0], "chunk-login"), (login[1], "chunk-pricing")])
    assert off_topic("I FORGOT MY PASSWORD", login, same) == []
    assert off_topic("I FORGOT MY PASSWORD", login, other) == ["The reset link is valid for 1 hour."]


def test_repeated_sentences_and_a_follow_up_that_repeats_the_previous_answer():
    sentences = [
        "Enterprise keeps 1 year of versions, Pro 30 days.",
        "Enterprise keeps 1 year of versions.",
        "Restore a version from Version history.",
    ]
    assert repeated(sentences) == ["Enterprise keeps 1 year of versions."]
    assert repeated(["Pause and resume sync.", "Restart the desktop app."]) == []
    first = "Here is what our help articles say: Pause and resume sync from the icon menu. Restart the desktop app now."
    assert repeats_previous("Pause and resume sync from the icon menu. Send us the logs from Help > Export logs.", first)
    assert not repeats_previous("Send us the log file from Help > Export logs with a description of the problem.", first)


def test_the_fixed_preamble_is_filler_and_is_stripped_before_the_other_checks():
    body, filler = strip_filler("Here is what our help articles say: 4. Restart the desktop app.")
    assert filler and body == "4. Restart the desktop app."
    form = judge("my dropbox app wont sync", "Here is what our help articles say: 4. Restart the desktop app.")
    assert form["filler"] and [f["reason"] for f in form["fragments"]] == ["list_item"]
    clean = judge("how much is pro", "Pro costs 9.99 EUR per month, or 99 EUR per year when paid annually.")
    assert not clean["filler"] and not clean["fragments"] and not clean["off_topic"] and not clean["repeated"]


def test_language_negation_echoes_and_contacts():
    assert detect_language("I'm sorry, I can't answer that. A colleague from our support team will help you.") == "en"
    assert detect_language("Das kann ich leider nicht beantworten. Ein Kollege aus unserem Support hilft Ihnen gerne.") == "de"
    assert detect_language("Je ne peux pas répondre à cette question. Un collègue de notre support va vous aider.") == "fr"
    assert detect_language("OK") is None
    assert negates("No credit card is needed to start the trial.")
    assert negates("You can't reset the Vault passphrase.")
    assert not negates("The app runs on Android 11 or later.")
    assert echoes("discount for educators?", 'I couldn\'t find anything about "educators" in our help articles.') == ["educators"]
    assert echoes("discount for educators?", 'Choose "Nonprofit discount" under Billing.') == []
    assert has_contact("Write to support@northwind.example.") and has_contact("Call +49 30 1234 5678.")
    assert has_contact("See status.northwind.example for updates.")
    assert not has_contact("I'm handing you over to a colleague from our support team.")
