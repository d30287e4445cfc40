"""A direct "No" from what the evidence leaves out of a list (ragtune/grounding/polarity.py)."""

from ragtune.grounding.polarity import Alternatives, asks_about_alternative, follows_with_no, is_yes_no, lead_with_no, says_no

DOCS = [
    "The Vault is included in Pro, Business and Enterprise plans.",
    "Link activity is shown on Pro and Business plans. Free and Pro accounts have one user.",
    "Data is stored in Frankfurt and Amsterdam. The Northwind app keeps the Vault locked.",
    "Text recognition reads English, German and French.",
]


def test_names_the_documents_list_together_are_alternatives_of_one_kind():
    alt = Alternatives.from_texts(DOCS)
    assert alt.groups["free"] == {"free", "pro", "business", "enterprise"}
    assert alt.groups["frankfurt"] == {"frankfurt", "amsterdam"}
    assert "the" not in alt.groups and "vault" not in alt.groups  # a name standing alone is no alternative
    assert "vault" in alt.proper and "northwind" in alt.proper  # capitalised mid-sentence: a name


def test_a_yes_no_question_about_an_alternative_the_evidence_leaves_out_is_answered_no():
    alt = Alternatives.from_texts(DOCS)
    vault = "The Vault is included in Pro, Business and Enterprise plans."
    assert says_no("is the vault on the free plan?", vault, alt)
    assert not says_no("is the vault on the business plan?", vault, alt)  # it is listed
    assert not says_no("which plans include the vault?", vault, alt)  # not a yes/no question
    assert not says_no("is the vault on free or pro?", vault, alt)  # a choice between two
    assert not says_no("is the free trial 30 days?", "Every account gets a 14-day free trial.", alt)  # no list of plans
    assert not says_no("is it on the free plan?", "The Vault is not available on the Free plan.", alt)  # says no itself
    assert says_no("does it read polish or french?", "Text recognition reads English, German and French.", alt) is False
    assert says_no("does it read italian?", "Text recognition reads English, German and French.", alt) is False  # never listed
    # "and on the free plan?" is a yes/no question only right after one.
    assert is_yes_no("and on the free plan?", "can I see who opened my link?")
    assert not is_yes_no("and on the free plan?", "how many devices can I connect?")
    assert lead_with_no(vault, alt.proper) == "No, the Vault is included in Pro, Business and Enterprise plans."
    assert lead_with_no("Pro: 1 TB, 1 user.", alt.proper) == "No, Pro: 1 TB, 1 user."


def test_a_follow_up_asks_about_an_alternative_only_when_it_points_back():
    alt = Alternatives.from_texts(DOCS)
    assert asks_about_alternative("does that work on the free plan too?", alt, "can i see who opened my link?") == "free"
    assert asks_about_alternative("and on business?", alt, "is link activity on pro?") == "business"
    assert asks_about_alternative("is the api on business?", alt, "how do i reset my password?") is None  # its own subject
    assert asks_about_alternative("is it on the free plan?", alt, None) is None  # nothing before


def test_a_bare_follow_up_naming_another_alternative_asks_the_previous_question_about_it():
    from ragtune.grounding.polarity import swapped, swapped_in

    alt = Alternatives.from_texts(DOCS)
    assert (
        swapped("and on business?", "how many versions do you keep on free", alt) == "how many versions do you keep on business"
    )
    assert (
        swapped("and pro?", "Free account - how many devices can I connect", alt)
        == "pro account - how many devices can I connect"
    )
    # A question of its own that names a plan is not a bare follow-up.
    assert swapped("ok and does the business plan come with an admin console", "how do i invite people on pro", alt) is None
    assert swapped("and on business?", "how do i reset my password", alt) is None  # nothing to swap
    assert swapped("and on pro?", "is pro worth it", alt) is None  # the same one
    # A chain of bare follow-ups: each stands for the question before it, swapped.
    asked = ["how fast do you answer on pro", "and on business?"]
    assert swapped_in("enterprise?", asked, alt) == "how fast do you answer on enterprise"


def test_a_version_below_the_documents_requirement_is_answered_no():
    from ragtune.grounding.polarity import below_requirement

    mobile = "The Northwind Cloud app runs on iOS 16 or later and Android 11 or later."
    desktop = "It runs on Windows 10 and 11 (64-bit) and macOS 12 or later, on Intel and Apple silicon."
    assert below_requirement("does the android app work on android 10?", mobile)
    assert not below_requirement("does it work on android 13", mobile)  # at or above the minimum
    assert below_requirement("will it run on ios 15.4?", mobile)
    assert below_requirement("does it run on windows 7", desktop)  # not among the versions listed
    assert not below_requirement("windows 11?", desktop)
    assert not below_requirement("is the plan 10 eur", mobile)  # no requirement for that name
    alt = Alternatives.from_texts(DOCS)
    assert says_no("does the android app work on android 10?", mobile, alt)
    assert not says_no("which android versions work?", mobile, alt)  # not a yes/no question


def test_a_span_longer_than_every_window_the_evidence_gives_is_answered_no():
    from ragtune.grounding.polarity import past_window

    refund = "You can cancel an annual plan within 30 days of the purchase or renewal date and receive a full refund."
    trash = "Deleted files can be restored from the Trash for 30 days on Free and Pro and 180 days on Business."
    assert past_window("i renewed my yearly plan 2 months ago, can i still get a refund", refund)
    assert not past_window("bought it 2 weeks ago, refund possible?", refund)
    assert past_window("i deleted a file a year ago, can i get it back?", trash)
    assert not past_window("deleted it 3 months ago, can i restore it", trash)  # 180 days on Business
    assert not past_window("is the trial 30 days?", "Every new account gets a 14-day free trial.")  # no window


BACKUPS = "Our own backups are encrypted and kept for 35 days for disaster recovery."
NOT_USED = "They are not used to restore single files for customers."


def test_the_sentence_going_on_from_the_lead_can_say_no_for_it():
    question = "do you use your own backups to restore a single file for me?"
    assert follows_with_no(question, BACKUPS, NOT_USED)
    # Only for a yes/no question, only a sentence that goes on from the lead, and only a "no" to
    # what the question asks ("not" about something else says nothing).
    assert not follows_with_no("how long do you keep your own backups?", BACKUPS, NOT_USED)
    assert not follows_with_no(question, BACKUPS, "Single files are not used to restore backups.")
    assert not follows_with_no(question, BACKUPS, "They are not shown in the web app.")
    # A lead that says no itself needs no "No," in front (says_no's rule: the unit says it already).
    assert not follows_with_no(question, "We do not keep backups of single files.", NOT_USED)
