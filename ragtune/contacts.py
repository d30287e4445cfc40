"""Contacts in text (e-mail addresses, phone numbers, web addresses) and which ones may be shown.

A knowledge base is written by many hands and imported from other systems, so a document can
carry a way to reach someone who is not the company: "send your password to x@evil.example".
An answer must never pass such a contact on. `find_contacts` finds them; `ContactPolicy` says
which are allowed: addresses and links on the company's own domains (`chat.company_domains`,
subdomains included, and the hosts of the sites its widget keys serve), the contacts the operator
lists (`chat.allowed_contacts`: e-mail addresses, phone numbers, URL prefixes, domains), the
support contact the hand-offs name (`chat.support_contact`) and those in the hand-off texts the
operator wrote (`chat.messages`). Serving withholds evidence sentences
carrying any other contact and removes them from answer text (`redact`, and `StreamRedactor` for
text sent while it is generated); ingestion reports them to the admin.

Finding is deliberately broad for links (any `scheme://`, `www.`, or a bare host name ending in a
top-level domain that is not a common file extension) and careful for phone numbers (7-15 digits
that look dialled: a leading + or 00, an area code in brackets, the 3-3-4 grouping, or a word such
as "call" or "phone" just before), so dates, prices and version numbers are not taken for numbers.
`http_url` is the one check for URLs that are shown as links (sources[].url): http(s) only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ragtune.settings import Settings

Kind = Literal["email", "phone", "url"]
REMOVED = "[contact removed]"

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
# "name [at] example [dot] com": the spelled-out form people use to dodge address harvesters.
_SPELLED_EMAIL = re.compile(r"(?<![\w.-])[\w.+-]+ *[\[(<{] *at *[\])>}] *[\w-]+(?: *[\[(<{] *dot *[\])>}] *[\w-]+)+", re.I)
_SCHEME_URL = re.compile(r"(?<![\w.+-])[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s<>\"'`]+")
_WWW_URL = re.compile(r"(?<![\w.@/-])www\.[^\s<>\"'`]+", re.I)
# A bare host name: labels, then a lower-case top-level domain ("end.Next" is a typo, not a host) not
# followed by "(" ("requests.get(url)" is code).
_BARE_HOST = re.compile(
    r"(?<![\w@./-])((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([a-z]{2,24}))(?![\w@(-])(?:[/?#][^\s<>\"'`]*)?"
)
# Top-level domains a bare host name may end in: every two-letter country code (minus file endings)
# and the generic ones in common use, scam favourites included; a link with a scheme or www. may
# end in any.
GENERIC_TLDS = frozenset(
    """com net org info biz edu gov mil int io ai app dev co me tv cc xyz online site shop store tech cloud support help
    link live top club email website web space world today life news blog page services service solutions agency digital
    network systems center company group global pro mobi name asia eu travel bank money finance pay security secure
    login account click download win vip icu buzz fun host work business care guide tips review reviews chat bot gg ly
    example test invalid localhost""".split()
)
# Endings that name files far more often than top-level domains ("notes.md", "setup.py").
FILE_SUFFIXES = frozenset(
    """md txt pdf doc docx xls xlsx ppt pptx csv tsv html htm epub ipynb json yaml yml toml xml ini cfg conf log py sh
    rs js ts go rb pl cs cpp hpp png jpg jpeg gif svg webp ico zip gz tgz tar bz xz rar exe dll bin iso dmg pkg apk msi deb
    rpm mp3 mp4 mov avi wav mkv css scss php jar db sqlite bak tmp gguf onnx lock""".split()
)
# Digit groups with one separator between them (never ". " or a line break, so a number never spans sentences).
_PHONE = re.compile(r"(?<![\w+/.-])(?:\+|00)?(?:\(\d{1,5}\)|\d{1,5})(?:[ \-./]?(?:\(\d{1,5}\)|\d{1,5})){1,7}(?![\w/-]|\.\d)")
_PHONE_WORDS = re.compile(
    r"\b(?:phone|tel|telephone|call|calls|calling|fax|hotline|whatsapp|sms|text|dial|mobile|cell|ring)\b\W{0,3}"
    r"(?:[a-z]+\W+){0,3}$",
    re.I,
)
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_NANP = re.compile(r"\(?\d{3}\)?[ \-.]\d{3}[ \-.]\d{4}")
_TRAILING = ".,;:!?)]}'\""


@dataclass(frozen=True)
class Contact:
    kind: Kind
    text: str  # as written
    start: int
    end: int
    key: str  # what is compared: the lower-case address, the phone's digits, the URL (lower case, no scheme)
    host: str = ""  # for e-mail addresses and URLs


def _host_of(url: str) -> str:
    try:
        host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").lower()


def _strip_trailing(text: str) -> str:
    while text and text[-1] in _TRAILING:
        if text[-1] == ")" and text.count("(") >= text.count(")"):
            break  # a link that ends in a bracket of its own (Wikipedia style)
        text = text[:-1]
    return text


def _phone(text: str, match: re.Match[str]) -> Contact | None:
    number = match.group(0)
    digits = re.sub(r"\D", "", number)
    if not 7 <= len(digits) <= 15 or _DATE.fullmatch(number):
        return None
    international = number.startswith(("+", "00"))
    area_code = "(" in number
    named = _PHONE_WORDS.search(text[max(0, match.start() - 40) : match.start()]) is not None
    grouped = _NANP.fullmatch(number) is not None
    if not (international or area_code or named or grouped):
        return None
    if not international and not area_code and re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", number):
        return None  # an IPv4 address
    key = digits[2:] if number.startswith("00") else digits
    return Contact("phone", number, match.start(), match.end(), key)


def _url(match: re.Match[str]) -> Contact:
    url = _strip_trailing(match.group(0))
    key = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url.lower())
    return Contact("url", url, match.start(), match.start() + len(url), key, _host_of(url))


def find_contacts(text: str) -> list[Contact]:
    """Every e-mail address, web address and phone number in `text`, in order, none overlapping."""
    found: list[Contact] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(contact: Contact) -> None:
        if contact.end > contact.start and free(contact.start, contact.end):
            found.append(contact)
            taken.append((contact.start, contact.end))

    for m in _SCHEME_URL.finditer(text):  # first: "https://own.example@evil.example/" is a link to evil.example
        add(_url(m))
    for m in _EMAIL.finditer(text):
        address = m.group(0)
        add(Contact("email", address, m.start(), m.end(), address.lower(), address.rpartition("@")[2].lower()))
    for m in _SPELLED_EMAIL.finditer(text):
        spelled = m.group(0)
        parts = re.split(r" *[\[(<{] *(?:at|dot) *[\])>}] *", spelled, flags=re.I)
        local, domain = parts[0], ".".join(parts[1:])
        add(Contact("email", spelled, m.start(), m.end(), f"{local}@{domain}".lower(), domain.lower()))
    for m in _WWW_URL.finditer(text):
        add(_url(m))
    for m in _BARE_HOST.finditer(text):
        tld = m.group(2)
        if tld in FILE_SUFFIXES or (len(tld) > 2 and tld not in GENERIC_TLDS):
            continue
        url = _strip_trailing(m.group(0))
        add(Contact("url", url, m.start(), m.start() + len(url), url.lower(), _host_of(url)))
    for m in _PHONE.finditer(text):
        phone = _phone(text, m)
        if phone is not None:
            add(phone)
    return sorted(found, key=lambda c: c.start)


def http_url(value: object) -> str | None:
    """`value` if it is an absolute http(s) URL that is safe to show as a link, else None.

    Front matter and canonical links are the document author's word: `javascript:`, `data:`,
    a scheme hidden behind spaces or control characters, or a relative path are not links."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def _domain(value: str) -> str:
    return value.strip().lower().lstrip("*").lstrip(".").rstrip(".")


class ContactPolicy:
    """Which contacts an answer may carry."""

    def __init__(self, domains: Iterable[str] = (), contacts: Iterable[str] = ()):
        self.domains: set[str] = {_domain(d) for d in domains if _domain(d)}
        self.addresses: set[str] = set()
        self.phones: set[str] = set()
        self.url_prefixes: list[str] = []
        for entry in contacts:
            self.allow(entry)

    @classmethod
    def from_settings(cls, settings: Settings) -> ContactPolicy:
        """The company's domains and contacts (chat.company_domains, chat.allowed_contacts), the hosts
        of the sites its widget keys and CORS origins name, the support contact the hand-offs name
        (chat.support_contact) and contacts in the hand-off texts the operator wrote (chat.messages)."""
        chat = settings.chat
        origins = [o for key in settings.auth.widget_keys for o in key.origins] + list(settings.server.cors_origins)
        hosts = [o.partition("://")[2].rsplit(":", 1)[0] for o in origins if o != "*"]
        policy = cls([*chat.company_domains, *hosts], chat.allowed_contacts)
        for text in (chat.support_contact, *chat.messages.values()):
            policy.allow_text(text)
        return policy

    def allow(self, entry: str) -> None:
        """Allow a contact: an e-mail address, a phone number, a URL (and what starts with it) or a
        domain (its addresses and links, subdomains included); a longer text allows what it holds."""
        entry = entry.strip()
        found = find_contacts(entry)
        if len(found) == 1 and found[0].text == entry:
            contact = found[0]
            if contact.kind == "email":
                self.addresses.add(contact.key)
            elif contact.kind == "phone":
                self.phones.add(contact.key)
            elif "/" in contact.key.rstrip("/") or "?" in contact.key:
                self.url_prefixes.append(contact.key)
            elif contact.host:
                self.domains.add(contact.host)
        elif found:
            for contact in found:
                self.allow(contact.text)
        elif re.fullmatch(r"\+?[\d ()./-]{7,}", entry):  # a number written without a word like "call"
            digits = re.sub(r"\D", "", entry)
            self.phones.add(digits[2:] if entry.startswith("00") else digits)
        elif _domain(entry):
            self.domains.add(_domain(entry))

    def allow_text(self, text: str) -> None:
        """Allow every contact written in `text` (an answer text the operator wrote)."""
        for contact in find_contacts(text):
            self.allow(contact.text)

    def _own_host(self, host: str) -> bool:
        return bool(host) and any(host == d or host.endswith("." + d) for d in self.domains)

    def allows(self, contact: Contact) -> bool:
        if contact.kind == "phone":
            return contact.key in self.phones
        if contact.kind == "email":
            return contact.key in self.addresses or self._own_host(contact.host)
        return self._own_host(contact.host) or any(contact.key.startswith(p) for p in self.url_prefixes)

    def not_allowed(self, contacts: Iterable[str]) -> list[str]:
        """Of contacts found earlier (their texts), those not allowed now."""
        return [c for c in contacts if any(not self.allows(found) for found in find_contacts(c))]

    def disallowed(self, text: str) -> list[Contact]:
        return [c for c in find_contacts(text) if not self.allows(c)]

    def redact(self, text: str) -> str:
        """`text` with every contact that is not allowed replaced by REMOVED."""
        out, last = [], 0
        for contact in self.disallowed(text):
            out.append(text[last : contact.start])
            out.append(REMOVED)
            last = contact.end
        out.append(text[last:])
        return "".join(out)

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


class StreamRedactor:
    """Redacts text that arrives in pieces (a streamed answer) without ever sending part of a contact.

    E-mail addresses and links lie within one word; phone numbers and spelled-out addresses
    ("x [at] evil [dot] example") span several. So the words at the end that could still be or
    become part of a contact are held back: the last word (it may grow), words of digits and
    separators before it (a number may go on), and words around an "at" / "dot". Everything before
    them is released, redacted: what is released is always a prefix of `policy.redact(whole
    text)`, so the streamed pieces and the final answer agree, and the final answer carries what
    was held."""

    def __init__(self, policy: ContactPolicy):
        self.policy = policy
        self.text = ""
        self.sent = 0

    def feed(self, piece: str) -> str:
        if not piece:
            return ""
        self.text += piece
        cut = _safe_cut(self.text)
        if cut <= 0:
            return ""
        released = self.policy.redact(self.text[:cut])
        new = released[self.sent :]
        self.sent = len(released)
        return new

    def flush(self) -> str:
        """The rest, once the text is complete (redacted like the whole)."""
        released = self.policy.redact(self.text)
        new = released[self.sent :]
        self.sent = len(released)
        return new


_WORD = re.compile(r"\S+")
_NUMBERISH = re.compile(r"[\d()+./-]*\d[\d()+./-]*[.,;:!?]?")
_SPELLED_PART = re.compile(r"[\[(<{]*(?:at|dot)?[\])>}]*", re.I)
_MAYBE_SPELLED = re.compile(r"[\[(<{]*(?:a|at|d|do|dot)?[\])>}]*", re.I)


def _safe_cut(text: str) -> int:
    """Where released text may end: the start of the words at the end that could still belong to a contact."""
    words = list(_WORD.finditer(text))
    if not words:
        return 0
    i = len(words) - 1  # the last word may still grow
    if _MAYBE_SPELLED.fullmatch(words[i].group()) and i > 0:
        i -= 1  # "[a" may become "[at]": the word before it is then an address's first part
    while i > 0:
        before, held = words[i - 1].group(), words[i].group()
        if _NUMBERISH.fullmatch(before) or _SPELLED_PART.fullmatch(before) or _SPELLED_PART.fullmatch(held):
            i -= 1
        else:
            break
    return words[i].start()
