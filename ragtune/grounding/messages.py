"""What the customer reads when the assistant hands off, in the customer's language.

The texts say what actually happens (the widget shows the contact option under a hand-off; the
API returns `handoff: true` for the client to act on) and never quote the customer's words back.
An operator replaces any of them with `chat.messages` ("de.no_answer": "...") and names the
contact with `chat.support_contact` ({contact} in a text).

The language is detected with langdetect (a naive Bayes model over character n-grams that ships
its profiles in the package); a question is taken as German or French only when the model is
confident, anything else is answered in English.
"""

from __future__ import annotations

import threading

LANGUAGES = ("en", "de", "fr")
# The language the grounding models read (the English MiniLM, the intent and brand models trained on
# English examples): in another language their hand-off reasons are guesses ("Ich habe mein Passwort
# vergessen" reads as a request for a person, "avec" as a product name).
GROUNDED_LANGUAGE = "en"
MIN_CONFIDENCE = 0.9
MIN_LETTERS = 16

DEFAULTS: dict[str, dict[str, str]] = {
    "en": {
        "no_answer": "I'm sorry, I couldn't find a clear answer to that in our help articles, and I'd rather not guess. "
        "Our support team can help you with this{contact_clause}.",
        "person": "Of course, I understand you'd like to talk to a person. Our support team will gladly take this over{contact_clause}.",
        "angry": "I'm really sorry this has been so frustrating. Our support team can look into it with you personally{contact_clause}.",
        "action": "I can't make changes to your account from this chat, but our support team can{contact_clause}.",
        "other_company": "That sounds like a question about another company's product, and I can only help with ours. "
        "Their own support knows it best; for anything about your account with us, our support team is there{contact_clause}.",
        "action_steps": "I can't make changes to your account from this chat, but here is how you can do it yourself: {answer} "
        "If you'd rather have our support team do it, they can help{contact_clause}.",
        "language": "I can only answer from our help articles in English so far, and I'd rather not guess. "
        "Our support team can help you{contact_clause}.",
        "contact_clause": ": {contact}",
        "no_contact_clause": " (see the contact option below)",
    },
    "de": {
        "no_answer": "Das konnte ich in unseren Hilfeartikeln leider nicht eindeutig finden, und ich möchte nicht raten. "
        "Unser Support-Team hilft Ihnen gerne weiter{contact_clause}.",
        "person": "Natürlich, Sie möchten mit einer Person sprechen. Unser Support-Team übernimmt das gerne{contact_clause}.",
        "angry": "Es tut mir wirklich leid, dass das so ärgerlich ist. Unser Support-Team kümmert sich persönlich darum{contact_clause}.",
        "action": "Änderungen an Ihrem Konto kann ich in diesem Chat nicht vornehmen, unser Support-Team aber schon{contact_clause}.",
        "other_company": "Das klingt nach einer Frage zum Produkt eines anderen Anbieters; ich kann nur bei unserem helfen. "
        "Dort hilft Ihnen dessen Support am besten; bei allem rund um Ihr Konto bei uns ist unser Support-Team da{contact_clause}.",
        "action_steps": "Änderungen an Ihrem Konto kann ich in diesem Chat nicht vornehmen. So geht es selbst: {answer} "
        "Unser Support-Team hilft auch gerne{contact_clause}.",
        "language": "Auf Deutsch kann ich leider noch nicht aus unseren Hilfeartikeln antworten, und ich möchte nicht raten. "
        "Unser Support-Team hilft Ihnen gerne weiter{contact_clause}.",
        "contact_clause": ": {contact}",
        "no_contact_clause": " (siehe Kontaktmöglichkeit unten)",
    },
    "fr": {
        "no_answer": "Je suis désolé, je n'ai pas trouvé de réponse claire dans nos articles d'aide et je préfère ne pas deviner. "
        "Notre équipe d'assistance peut vous aider{contact_clause}.",
        "person": "Bien sûr, vous souhaitez parler à une personne. Notre équipe d'assistance prendra le relais{contact_clause}.",
        "angry": "Je suis vraiment désolé que cela soit aussi pénible. Notre équipe d'assistance va s'en occuper personnellement{contact_clause}.",
        "action": "Je ne peux pas modifier votre compte depuis ce chat, mais notre équipe d'assistance le peut{contact_clause}.",
        "other_company": "Cela semble concerner le produit d'une autre entreprise, et je ne peux aider que pour le nôtre. "
        "Son assistance saura mieux vous répondre ; pour votre compte chez nous, notre équipe est là{contact_clause}.",
        "action_steps": "Je ne peux pas modifier votre compte depuis ce chat, mais voici comment le faire vous-même : {answer} "
        "Notre équipe d'assistance peut aussi vous aider{contact_clause}.",
        "language": "Je ne peux pas encore répondre en français à partir de nos articles d'aide, et je préfère ne pas deviner. "
        "Notre équipe d'assistance peut vous aider{contact_clause}.",
        "contact_clause": " : {contact}",
        "no_contact_clause": " (voir l'option de contact ci-dessous)",
    },
}
# Which text a hand-off reason shows.
REASON_TEXT = {
    "no_evidence": "no_answer",
    "low_evidence": "no_answer",
    "language": "language",
    "person": "person",
    "angry": "angry",
    "action": "action",
    "other_company": "other_company",
}

_lock = threading.Lock()


# Profiles loaded: the languages answered plus common neighbours, so that a Dutch or Spanish
# question is not taken for German (answered in English instead).
PROFILES = ("en", "de", "fr", "nl", "es", "it", "pt", "da", "sv")
_factory = None


def _detector_factory():
    global _factory
    if _factory is None:
        from pathlib import Path

        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

        factory = DetectorFactory()
        factory.load_json_profile([(Path(PROFILES_DIRECTORY) / lang).read_text(encoding="utf-8") for lang in PROFILES])
        factory.set_seed(0)
        _factory = factory
    return _factory


def detect_language(text: str) -> str:
    """ "de" or "fr" when langdetect is confident, else "en"."""
    if sum(c.isalpha() for c in text) < MIN_LETTERS:
        return "en"
    from langdetect.lang_detect_exception import LangDetectException

    with _lock:  # one factory, seeded: deterministic
        try:
            detector = _detector_factory().create()
            detector.append(text)
            found = detector.get_probabilities()
        except LangDetectException:
            return "en"
    for guess in found:
        if guess.lang in LANGUAGES and guess.prob >= MIN_CONFIDENCE:
            return guess.lang
    return "en"


def message(kind: str, language: str, contact: str = "", overrides: dict[str, str] | None = None, answer: str = "") -> str:
    """The text of `kind` (no_answer, person, angry, action, action_steps) in `language`."""
    language = language if language in DEFAULTS else "en"
    overrides = overrides or {}

    def text(key: str) -> str:
        return overrides.get(f"{language}.{key}") or overrides.get(key if language == "en" else "") or DEFAULTS[language][key]

    clause = text("contact_clause").replace("{contact}", contact) if contact else text("no_contact_clause")
    return text(kind).replace("{contact_clause}", clause).replace("{answer}", answer).strip()
