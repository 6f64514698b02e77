"""A synthetic English -> German translation task: a small grammar and lexicon of our own.

The paper translates news text (WMT 2014); nothing can be downloaded here, so lesson 14 makes
its sentence pairs with this generator. It is *synthetic language*, not a corpus: every pair is
one grammatical English sentence and the one German sentence these rules give for it. What it
covers, honestly:

  * a lexicon of 72 nouns (German gender, irregular plurals, the -n of the dative plural),
    30 adjectives, 48 verbs (regular and strong, `haben` or `sein` in the perfect, four that
    take a dative object: helfen, danken, folgen, antworten) and the function words around them:
    about 490 English and 1,010 German word forms in 30,000 sentences (capitalised variants
    counted, the digits 13..99 not);
  * noun phrases with the definite article, `dieser`, the indefinite article, `kein`, the
    possessives mein/dein/sein/ihr/unser, number words (two..twelve), digits (13..99), `viele`
    and bare plurals; adjectives agree in gender, case and number (weak, mixed and strong
    declension); `in dem` -> `im`, `zu dem` -> `zum`, `zu der` -> `zur`, `von dem` -> `vom`;
  * nominative subjects, accusative and dative objects, the dative before the accusative,
    prepositions that govern the dative (mit, in, neben, von, zu) or the accusative (ohne, für);
  * four tenses mapped one to one: present (sieht), simple past (sah), perfect (hat ... gesehen,
    ist ... gegangen) and future (wird ... sehen), with the non-finite verb at the end of the clause;
  * verb-second main clauses (a fronted time adverb or subordinate clause moves the subject after
    the verb), verb-first yes/no questions, and verb-final subordinate clauses after dass, weil,
    obwohl and wenn, in the middle or at the front of the sentence;
  * relative clauses on objects ("the dog that sees the cat" -> "den Hund, der die Katze sieht,"):
    the pronoun agrees with its noun, the verb goes last, the clause sits inside the sentence, so a
    participle can come after it ("hat den Hund, der ..., gesehen"); a thing's relative clause is
    a copula ("the soup that is warm");
  * negation: `kein` for an indefinite object ("does not see a dog" -> "sieht keinen Hund"),
    `nicht` at the end of the middle field otherwise.

What it leaves out: the genitive, pronoun objects, object relatives ("the dog that the cat sees"),
modal verbs, separable verbs, weak masculine nouns (der Student, den Studenten), mass nouns
without an article, idioms, and any
ambiguity: a sentence has exactly one translation (real text has many). Negated clauses carry no
prepositional phrase, so `nicht` never has to choose its scope. The words are real; the sentences
are often odd ("The green horse reads a letter"): the grammar checks agreement, not sense, beyond
simple classes (people and animals do things; things are read, eaten, opened). The tenses map one
to one, so the English is not always idiomatic ("Yesterday the men have seen ...", "if the dog will
come"), and German uses its simple past where speech would prefer the perfect.

Splits. A pair belongs to one split, decided by the pair itself, so no sentence of a held-out
split is ever trained on:
  * "compositional": sentences holding an unseen *combination*: a relative clause on a subject
    (training has them on objects only, so the main verb must now come after a whole clause, "Der
    Hund, der die Katze sieht, schläft"; Kim and Linzen's COGS, 2020, found such structural
    generalisation hard), one of the 10% of (adjective, noun) pairs chosen by a hash
    (`heldout_adj_noun`), or one of `HELDOUT_SUB_VERBS` in a subordinate or relative clause
    (verb-final, where training shows those verbs only in main clauses). Every word is trained;
    the combination never is (compositional generalisation);
  * the others go to "train", "validation" or "test" by a hash of the English sentence
    (`SPLIT_PERCENT`), so the test sentences are new sentences of familiar combinations.
`sample_pairs(n, split, seed)` draws n distinct pairs of a split; it is deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from .validate import check_int

SPLITS = ("train", "validation", "test", "compositional")
SPLIT_PERCENT = {"validation": 3, "test": 3}  # of the sentences without a held-out combination
HELDOUT_ADJ_NOUN_PERCENT = 10

# --- lexicon ------------------------------------------------------------------------------
# noun: English singular, English plural, gender (m/f/n), German singular, German plural, class
# classes: "person", "animal" (both animate), "place", "food", "text", "thing"
_NOUNS = """
man men m Mann Männer person
woman women f Frau Frauen person
child children n Kind Kinder person
teacher teachers m Lehrer Lehrer person
doctor doctors f Ärztin Ärztinnen person
cook cooks m Koch Köche person
friend friends m Freund Freunde person
girl girls n Mädchen Mädchen person
brother brothers m Bruder Brüder person
sister sisters f Schwester Schwestern person
king kings m König Könige person
queen queens f Königin Königinnen person
farmer farmers m Landwirt Landwirte person
baker bakers m Bäcker Bäcker person
mother mothers f Mutter Mütter person
father fathers m Vater Väter person
dog dogs m Hund Hunde animal
cat cats f Katze Katzen animal
horse horses n Pferd Pferde animal
bird birds m Vogel Vögel animal
mouse mice f Maus Mäuse animal
cow cows f Kuh Kühe animal
pig pigs n Schwein Schweine animal
goat goats f Ziege Ziegen animal
fox foxes m Fuchs Füchse animal
duck ducks f Ente Enten animal
house houses n Haus Häuser place
garden gardens m Garten Gärten place
city cities f Stadt Städte place
school schools f Schule Schulen place
village villages n Dorf Dörfer place
room rooms n Zimmer Zimmer place
kitchen kitchens f Küche Küchen place
park parks m Park Parks place
forest forests m Wald Wälder place
church churches f Kirche Kirchen place
station stations m Bahnhof Bahnhöfe place
shop shops m Laden Läden place
apple apples m Apfel Äpfel food
bread breads n Brot Brote food
egg eggs n Ei Eier food
cake cakes m Kuchen Kuchen food
soup soups f Suppe Suppen food
carrot carrots f Karotte Karotten food
pear pears f Birne Birnen food
sausage sausages f Wurst Würste food
book books n Buch Bücher text
letter letters m Brief Briefe text
newspaper newspapers f Zeitung Zeitungen text
story stories f Geschichte Geschichten text
card cards f Karte Karten text
song songs n Lied Lieder text
poem poems n Gedicht Gedichte text
table tables m Tisch Tische thing
chair chairs m Stuhl Stühle thing
key keys m Schlüssel Schlüssel thing
hat hats m Hut Hüte thing
ball balls m Ball Bälle thing
car cars n Auto Autos thing
window windows n Fenster Fenster thing
door doors f Tür Türen thing
lamp lamps f Lampe Lampen thing
bag bags f Tasche Taschen thing
bottle bottles f Flasche Flaschen thing
picture pictures n Bild Bilder thing
ship ships n Schiff Schiffe thing
boat boats n Boot Boote thing
glass glasses n Glas Gläser thing
gift gifts n Geschenk Geschenke thing
knife knives n Messer Messer thing
bed beds n Bett Betten thing
clock clocks f Uhr Uhren thing
"""

# adjective: English, German stem for endings (dunkel -> dunkl-e), German predicate form
_ADJECTIVES = """
big groß groß
small klein klein
old alt alt
young jung jung
new neu neu
red rot rot
blue blau blau
green grün grün
black schwarz schwarz
white weiß weiß
yellow gelb gelb
beautiful schön schön
ugly hässlich hässlich
tired müd müde
happy glücklich glücklich
sad traurig traurig
clever klug klug
rich reich reich
poor arm arm
fast schnell schnell
slow langsam langsam
loud laut laut
quiet leis leise
warm warm warm
cold kalt kalt
hungry hungrig hungrig
friendly freundlich freundlich
strong stark stark
dark dunkl dunkel
expensive teur teuer
"""

# verb: English base|3sg|past|participle ; German infinitive|1sg|3sg|plural|past sg|past pl|participle ;
# auxiliary ; frame (intr, tr, dat, ditr) ; object class (any, animate, thing, food, text, place+animate)
_VERBS = """
see|sees|saw|seen ; sehen|sehe|sieht|sehen|sah|sahen|gesehen ; haben ; tr ; any
find|finds|found|found ; finden|finde|findet|finden|fand|fanden|gefunden ; haben ; tr ; any
buy|buys|bought|bought ; kaufen|kaufe|kauft|kaufen|kaufte|kauften|gekauft ; haben ; tr ; thing+food+text
sell|sells|sold|sold ; verkaufen|verkaufe|verkauft|verkaufen|verkaufte|verkauften|verkauft ; haben ; tr ; thing+food+animal
read|reads|read|read ; lesen|lese|liest|lesen|las|lasen|gelesen ; haben ; tr ; text
write|writes|wrote|written ; schreiben|schreibe|schreibt|schreiben|schrieb|schrieben|geschrieben ; haben ; tr ; text
like|likes|liked|liked ; mögen|mag|mag|mögen|mochte|mochten|gemocht ; haben ; tr ; any
love|loves|loved|loved ; lieben|liebe|liebt|lieben|liebte|liebten|geliebt ; haben ; tr ; animate
visit|visits|visited|visited ; besuchen|besuche|besucht|besuchen|besuchte|besuchten|besucht ; haben ; tr ; place+person
carry|carries|carried|carried ; tragen|trage|trägt|tragen|trug|trugen|getragen ; haben ; tr ; thing+food+text+animal
hold|holds|held|held ; halten|halte|hält|halten|hielt|hielten|gehalten ; haben ; tr ; thing+food+text
open|opens|opened|opened ; öffnen|öffne|öffnet|öffnen|öffnete|öffneten|geöffnet ; haben ; tr ; thing+text
paint|paints|painted|painted ; malen|male|malt|malen|malte|malten|gemalt ; haben ; tr ; any
wash|washes|washed|washed ; waschen|wasche|wäscht|waschen|wusch|wuschen|gewaschen ; haben ; tr ; thing+animate
catch|catches|caught|caught ; fangen|fange|fängt|fangen|fing|fingen|gefangen ; haben ; tr ; animal+thing
eat|eats|ate|eaten ; essen|esse|isst|essen|aß|aßen|gegessen ; haben ; tr ; food
cook|cooks|cooked|cooked ; kochen|koche|kocht|kochen|kochte|kochten|gekocht ; haben ; tr ; food
need|needs|needed|needed ; brauchen|brauche|braucht|brauchen|brauchte|brauchten|gebraucht ; haben ; tr ; any
look for|looks for|looked for|looked for ; suchen|suche|sucht|suchen|suchte|suchten|gesucht ; haben ; tr ; any
call|calls|called|called ; rufen|rufe|ruft|rufen|rief|riefen|gerufen ; haben ; tr ; animate
hear|hears|heard|heard ; hören|höre|hört|hören|hörte|hörten|gehört ; haben ; tr ; animate+text
forget|forgets|forgot|forgotten ; vergessen|vergesse|vergisst|vergessen|vergaß|vergaßen|vergessen ; haben ; tr ; any
meet|meets|met|met ; treffen|treffe|trifft|treffen|traf|trafen|getroffen ; haben ; tr ; person
lose|loses|lost|lost ; verlieren|verliere|verliert|verlieren|verlor|verloren|verloren ; haben ; tr ; thing+text
take|takes|took|taken ; nehmen|nehme|nimmt|nehmen|nahm|nahmen|genommen ; haben ; tr ; thing+food+text
build|builds|built|built ; bauen|baue|baut|bauen|baute|bauten|gebaut ; haben ; tr ; thing+place
help|helps|helped|helped ; helfen|helfe|hilft|helfen|half|halfen|geholfen ; haben ; dat ; animate
thank|thanks|thanked|thanked ; danken|danke|dankt|danken|dankte|dankten|gedankt ; haben ; dat ; person
follow|follows|followed|followed ; folgen|folge|folgt|folgen|folgte|folgten|gefolgt ; sein ; dat ; animate
answer|answers|answered|answered ; antworten|antworte|antwortet|antworten|antwortete|antworteten|geantwortet ; haben ; dat ; person
give|gives|gave|given ; geben|gebe|gibt|geben|gab|gaben|gegeben ; haben ; ditr ; thing+food+text
show|shows|showed|shown ; zeigen|zeige|zeigt|zeigen|zeigte|zeigten|gezeigt ; haben ; ditr ; thing+text+animal
send|sends|sent|sent ; schicken|schicke|schickt|schicken|schickte|schickten|geschickt ; haben ; ditr ; thing+food+text
bring|brings|brought|brought ; bringen|bringe|bringt|bringen|brachte|brachten|gebracht ; haben ; ditr ; thing+food+text
tell|tells|told|told ; erzählen|erzähle|erzählt|erzählen|erzählte|erzählten|erzählt ; haben ; ditr ; text
sleep|sleeps|slept|slept ; schlafen|schlafe|schläft|schlafen|schlief|schliefen|geschlafen ; haben ; intr ; -
laugh|laughs|laughed|laughed ; lachen|lache|lacht|lachen|lachte|lachten|gelacht ; haben ; intr ; -
wait|waits|waited|waited ; warten|warte|wartet|warten|wartete|warteten|gewartet ; haben ; intr ; -
work|works|worked|worked ; arbeiten|arbeite|arbeitet|arbeiten|arbeitete|arbeiteten|gearbeitet ; haben ; intr ; -
sing|sings|sang|sung ; singen|singe|singt|singen|sang|sangen|gesungen ; haben ; intr ; -
dance|dances|danced|danced ; tanzen|tanze|tanzt|tanzen|tanzte|tanzten|getanzt ; haben ; intr ; -
play|plays|played|played ; spielen|spiele|spielt|spielen|spielte|spielten|gespielt ; haben ; intr ; -
cry|cries|cried|cried ; weinen|weine|weint|weinen|weinte|weinten|geweint ; haben ; intr ; -
go|goes|went|gone ; gehen|gehe|geht|gehen|ging|gingen|gegangen ; sein ; move ; -
come|comes|came|come ; kommen|komme|kommt|kommen|kam|kamen|gekommen ; sein ; move ; -
run|runs|ran|run ; laufen|laufe|läuft|laufen|lief|liefen|gelaufen ; sein ; move ; -
swim|swims|swam|swum ; schwimmen|schwimme|schwimmt|schwimmen|schwamm|schwammen|geschwommen ; sein ; move ; -
travel|travels|travelled|travelled ; reisen|reise|reist|reisen|reiste|reisten|gereist ; sein ; move ; -
"""

# verbs that never appear in a subordinate (verb-final) clause in training: the compositional split
HELDOUT_SUB_VERBS = ("find", "wash", "thank", "show", "sing", "run")

NUMBERS = {
    2: ("two", "zwei"),
    3: ("three", "drei"),
    4: ("four", "vier"),
    5: ("five", "fünf"),
    6: ("six", "sechs"),
    7: ("seven", "sieben"),
    8: ("eight", "acht"),
    9: ("nine", "neun"),
    10: ("ten", "zehn"),
    11: ("eleven", "elf"),
    12: ("twelve", "zwölf"),
}

# pronoun subjects: English, German, person-number ("1sg", "3sg", "1pl", "3pl")
PRONOUNS = (
    ("I", "ich", "1sg"),
    ("he", "er", "3sg"),
    ("she", "sie", "3sg"),
    ("we", "wir", "1pl"),
    ("they", "sie", "3pl"),
)

# time adverbs: English, German, tenses they go with
ADVERBS = (
    ("today", "heute", ("present", "perfect")),
    ("now", "jetzt", ("present",)),
    ("sometimes", "manchmal", ("present", "past")),
    ("yesterday", "gestern", ("past", "perfect")),
    ("tomorrow", "morgen", ("future",)),
)
REPORT_VERBS = (  # main verbs that take a dass-clause: English present, past; German 3sg, pl, past sg, past pl
    ("say", "says", "said", "sagt", "sagen", "sagte", "sagten", "sage"),
    ("think", "thinks", "thought", "denkt", "denken", "dachte", "dachten", "denke"),
    ("know", "knows", "knew", "weiß", "wissen", "wusste", "wussten", "weiß"),
    ("hear", "hears", "heard", "hört", "hören", "hörte", "hörten", "höre"),
)
CONJUNCTIONS = (("because", "weil"), ("although", "obwohl"), ("if", "wenn"))
TENSES = ("present", "past", "perfect", "future")

# German article endings by (case, gender or "pl")
_DER = {
    "nom": {"m": "der", "f": "die", "n": "das", "pl": "die"},
    "acc": {"m": "den", "f": "die", "n": "das", "pl": "die"},
    "dat": {"m": "dem", "f": "der", "n": "dem", "pl": "den"},
}
_DIES = {
    "nom": {"m": "er", "f": "e", "n": "es", "pl": "e"},
    "acc": {"m": "en", "f": "e", "n": "es", "pl": "e"},
    "dat": {"m": "em", "f": "er", "n": "em", "pl": "en"},
}
_EIN = {  # endings of ein, kein, mein ...: "" for ein (nom m)
    "nom": {"m": "", "f": "e", "n": "", "pl": "e"},
    "acc": {"m": "en", "f": "e", "n": "", "pl": "e"},
    "dat": {"m": "em", "f": "er", "n": "em", "pl": "en"},
}
_WEAK = {  # adjective after der, dieser
    "nom": {"m": "e", "f": "e", "n": "e", "pl": "en"},
    "acc": {"m": "en", "f": "e", "n": "e", "pl": "en"},
    "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"},
}
_MIXED = {  # adjective after ein, kein, mein ...
    "nom": {"m": "er", "f": "e", "n": "es", "pl": "en"},
    "acc": {"m": "en", "f": "e", "n": "es", "pl": "en"},
    "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"},
}
_STRONG_PL = {"nom": "e", "acc": "e", "dat": "en"}  # adjective with no article, plural
POSSESSIVES = (("my", "mein"), ("your", "dein"), ("his", "sein"), ("her", "ihr"), ("our", "unser"))
# prepositions: English, German, German case, object classes
PREPOSITIONS = (
    ("with", "mit", "dat", ("person", "animal", "thing")),
    ("in", "in", "dat", ("place",)),
    ("next to", "neben", "dat", ("place", "thing", "person", "animal")),
    ("without", "ohne", "acc", ("person", "animal", "thing")),
    ("for", "für", "acc", ("person", "animal")),
)
MOVE_PREPOSITIONS = (("to", "zu", "dat", ("place", "person")), ("from", "von", "dat", ("place", "person")))
_CONTRACT = {("in", "dem"): "im", ("zu", "dem"): "zum", ("zu", "der"): "zur", ("von", "dem"): "vom"}


@dataclass(frozen=True)
class Noun:
    en: str
    en_pl: str
    gender: str
    de: str
    de_pl: str
    cls: str

    @property
    def animate(self) -> bool:
        return self.cls in ("person", "animal")

    def de_form(self, number: str, case: str) -> str:
        """The German noun: plural forms take -n in the dative unless they end in -n or -s."""
        if number == "sg":
            return self.de
        if case == "dat" and not self.de_pl.endswith(("n", "s")):
            return self.de_pl + "n"
        return self.de_pl


@dataclass(frozen=True)
class Adjective:
    en: str
    stem: str
    predicate: str


@dataclass(frozen=True)
class Verb:
    en: tuple[str, str, str, str]  # base, 3sg, past, participle
    de: tuple[str, ...]  # infinitive, 1sg, 3sg, plural, past sg, past pl, participle
    aux: str  # "haben" or "sein"
    frame: str  # "intr", "move", "tr", "dat", "ditr"
    objects: tuple[str, ...]  # noun classes of the (direct) object

    @property
    def name(self) -> str:
        return self.en[0]


def _parse() -> tuple[list[Noun], list[Adjective], list[Verb]]:
    nouns = [Noun(*line.split()) for line in _NOUNS.strip().splitlines()]
    adjs = [Adjective(*line.split()) for line in _ADJECTIVES.strip().splitlines()]
    verbs = []
    for line in _VERBS.strip().splitlines():
        en, de, aux, frame, objs = (p.strip() for p in line.split(";"))
        expand = {
            "animate": ("person", "animal"),
            "any": ("person", "animal", "place", "food", "text", "thing"),
        }
        classes: tuple[str, ...] = ()
        if objs != "-":
            for c in objs.split("+"):
                classes += expand.get(c, (c,))
        verbs.append(Verb(tuple(en.split("|")), tuple(de.split("|")), aux, frame, classes))
    return nouns, adjs, verbs


NOUNS, ADJECTIVES, VERBS = _parse()
_VERB_BY_NAME = {v.name: v for v in VERBS}


def _hash_percent(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little") % 100


def heldout_adj_noun(adj: Adjective, noun: Noun) -> bool:
    """True for the 10% of (adjective, noun) combinations that training never shows."""
    return _hash_percent(f"adj-noun:{adj.en}:{noun.en}") < HELDOUT_ADJ_NOUN_PERCENT


# --- phrases ----------------------------------------------------------------------------
@dataclass
class NP:
    """A noun phrase, in both languages once its case is known."""

    en: str
    person: str  # "1sg", "3sg", "1pl", "3pl"
    de_by_case: dict[str, str]
    indefinite: bool = False  # a / bare plural: negated with kein
    de_negated: dict[str, str] = field(default_factory=dict)  # the kein- form, when indefinite
    g: str = ""  # German gender or "pl": what a relative pronoun agrees with

    def de(self, case: str, negated: bool = False) -> str:
        return self.de_negated[case] if negated and self.indefinite else self.de_by_case[case]


def _an(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def noun_phrase(rng: random.Random, noun: Noun, combos: set, quantified: bool = True) -> NP:
    """A random determiner, an optional adjective, and the noun, declined in every case.

    quantified=False leaves out numbers and `many` (the object of a negated clause, where
    `nicht` would have to come before them)."""
    number = "pl" if rng.random() < 0.35 else "sg"
    adj = rng.choice(ADJECTIVES) if rng.random() < 0.45 else None
    if adj is not None:
        combos.add(("adj-noun", adj.en, noun.en))
    g = number if number == "pl" else noun.gender
    kinds = ["the", "this", "poss"] + (["a"] if number == "sg" else ["bare", "number", "digits", "many"])
    weights = [4, 1, 1.5] + ([3] if number == "sg" else [2, 2, 0.7, 1] if quantified else [2, 0, 0, 0])
    kind = rng.choices(kinds, weights)[0]
    en_noun = noun.en if number == "sg" else noun.en_pl
    en_head = f"{adj.en} {en_noun}" if adj else en_noun

    def de_np(case: str, det: str, table: dict | None) -> str:
        parts = [det] if det else []
        if adj is not None:
            if table is None:
                ending = _STRONG_PL[case]
            else:
                ending = table[case][g]
            parts.append(adj.stem + ending)
        parts.append(noun.de_form(number, case))
        return " ".join(parts)

    cases = ("nom", "acc", "dat")
    negated: dict[str, str] = {}
    indefinite = False
    if kind == "the":
        en = f"the {en_head}"
        de = {c: de_np(c, _DER[c][g], _WEAK) for c in cases}
    elif kind == "this":
        en = f"{'this' if number == 'sg' else 'these'} {en_head}"
        de = {c: de_np(c, "dies" + _DIES[c][g], _WEAK) for c in cases}
    elif kind == "poss":
        en_p, de_p = rng.choice(POSSESSIVES)
        en = f"{en_p} {en_head}"
        de = {c: de_np(c, _possessive(de_p, _EIN[c][g]), _MIXED) for c in cases}
    elif kind == "a":
        en = f"{_an(en_head)} {en_head}"
        de = {c: de_np(c, "ein" + _EIN[c][g], _MIXED) for c in cases}
        negated = {c: de_np(c, "kein" + _EIN[c][g], _MIXED) for c in cases}
        indefinite = True
    elif kind == "bare":
        en = en_head
        de = {c: de_np(c, "", None) for c in cases}
        negated = {c: de_np(c, "kein" + _EIN[c]["pl"], _MIXED) for c in cases}
        indefinite = True
    elif kind == "many":
        en = f"many {en_head}"
        de = {c: de_np(c, "viele" if c != "dat" else "vielen", None) for c in cases}
    else:
        k = rng.choice(list(NUMBERS)) if kind == "number" else rng.randint(13, 99)
        word_en, word_de = NUMBERS[k] if k in NUMBERS else (str(k), str(k))
        en = f"{word_en} {en_head}"
        de = {c: de_np(c, word_de, None) for c in cases}
    return NP(en, "3pl" if number == "pl" else "3sg", de, indefinite, negated, g)


_REL_PRONOUN = {"m": "der", "f": "die", "n": "das", "pl": "die"}  # nominative: the relative clause's subject


def with_relative(rng: random.Random, np_: NP, combos: set, animate: bool = True) -> NP:
    """The noun phrase followed by a relative clause whose subject it is: "the dog that sees the cat"
    is "der Hund, der die Katze sieht," (the pronoun agrees with the noun, the verb goes last; the
    closing comma goes when punctuation follows). A thing gets a copula ("the soup that is warm")."""
    rel = NP("that", np_.person, {"nom": _REL_PRONOUN[np_.g]})
    c = clause(rng, _tense(rng), False, combos, sub=True, subj=rel, copula=not animate)
    en_rel, de_rel = c.english(), c.german_sub()

    def add(forms: dict[str, str]) -> dict[str, str]:
        return {k: f"{v}, {de_rel}," for k, v in forms.items()}

    return NP(
        f"{np_.en} {en_rel}", np_.person, add(np_.de_by_case), np_.indefinite, add(np_.de_negated), np_.g
    )


def _possessive(stem: str, ending: str) -> str:
    if stem == "unser" and ending:
        return "unser" + ending  # unsere, unseren, unserem
    return stem + ending


def _pick_noun(rng: random.Random, classes: tuple[str, ...]) -> Noun:
    while True:
        n = rng.choice(NOUNS)
        if n.cls in classes:
            return n


def subject(rng: random.Random, combos: set, relative: bool = True) -> NP:
    """A pronoun or a noun phrase; now and then with a relative clause (only in the compositional split)."""
    if rng.random() < 0.2:
        en, de, person = rng.choice(PRONOUNS)
        return NP(en, person, {"nom": de})
    np_ = noun_phrase(rng, _pick_noun(rng, ("person", "animal")), combos)
    if relative and rng.random() < 0.08:
        combos.add(("rel-subject",))
        np_ = with_relative(rng, np_, combos)
    return np_


# --- verb forms ---------------------------------------------------------------------------
def _de_finite(verb_de: tuple[str, ...], person: str, tense: str) -> str:
    """Finite German form of a lexical verb in present or past."""
    inf, s1, s3, pl, past_sg, past_pl, _ = verb_de
    if tense == "present":
        return {"1sg": s1, "3sg": s3}.get(person, pl)
    return past_sg if person in ("1sg", "3sg") else past_pl


_HABEN = ("haben", "habe", "hat", "haben", "hatte", "hatten", "gehabt")
_SEIN = ("sein", "bin", "ist", "sind", "war", "waren", "gewesen")
_WERDEN = ("werden", "werde", "wird", "werden", "wurde", "wurden", "geworden")


def _en_be(person: str, past: bool) -> str:
    if past:
        return "was" if person in ("1sg", "3sg") else "were"
    return {"1sg": "am", "3sg": "is"}.get(person, "are")


def _en_has(person: str) -> str:
    return "has" if person == "3sg" else "have"


def _en_do(person: str, past: bool) -> str:
    return "did" if past else ("does" if person == "3sg" else "do")


@dataclass
class Clause:
    """A clause in pieces, so that it can be ordered as a main clause, a question or a
    subordinate clause. German: finite verb, middle field (objects, nicht, PP), the non-finite
    verb. English: the verb group split into its auxiliary and the rest."""

    subj: NP
    en_aux: str | None  # the English auxiliary that inverts in a question (does, did, has, will, is)
    en_rest: str  # the English verb group after the auxiliary (with 'not' when negated)
    en_plain: str  # the English verb group of a positive declarative clause
    en_after: str  # objects, complements, PP
    de_finite: str
    de_middle: list[str]
    de_final: str  # participle or infinitive ('' in simple tenses)
    negated: bool

    def english(self, question: bool = False) -> str:
        if question:
            return " ".join(w for w in (self.en_aux, self.subj.en, self.en_rest, self.en_after) if w)
        return " ".join(w for w in (self.subj.en, self.en_plain, self.en_after) if w)

    def german_main(self, front: str | None = None) -> str:
        """Verb second: the front (subject by default), the finite verb, the rest, the final verb."""
        if front is None:
            parts = [self.subj.de("nom"), self.de_finite, *self.de_middle]
        else:
            parts = [front, self.de_finite, self.subj.de("nom"), *self.de_middle]
        return " ".join(p for p in (*parts, self.de_final) if p)

    def german_question(self) -> str:
        return " ".join(p for p in (self.de_finite, self.subj.de("nom"), *self.de_middle, self.de_final) if p)

    def german_sub(self) -> str:
        """Verb final: subject, middle field, non-finite verb, finite verb."""
        return " ".join(p for p in (self.subj.de("nom"), *self.de_middle, self.de_final, self.de_finite) if p)


def _pp(rng: random.Random, verb: Verb | None, combos: set) -> tuple[str, str]:
    preps = (
        MOVE_PREPOSITIONS + PREPOSITIONS[:1] if verb is not None and verb.frame == "move" else PREPOSITIONS
    )
    if verb is not None and verb.frame not in ("tr", "ditr", "dat"):
        preps = tuple(p for p in preps if p[0] != "for")
    en_p, de_p, case, classes = rng.choice(preps)
    np_ = noun_phrase(rng, _pick_noun(rng, classes), combos)
    de = np_.de(case)
    first, _, rest = de.partition(" ")
    if (de_p, first) in _CONTRACT and rest:
        return f"{en_p} {np_.en}", f"{_CONTRACT[(de_p, first)]} {rest}"
    return f"{en_p} {np_.en}", f"{de_p} {de}"


def clause(
    rng: random.Random,
    tense: str,
    negated: bool,
    combos: set,
    sub: bool = False,
    subj: NP | None = None,
    copula: bool = False,
    relative: bool = True,
) -> Clause:
    """A random clause: subject, verb (or copula) and its objects, in a given tense.

    With `subj` given (a relative pronoun) it is a relative clause: no relative clause inside it.
    copula=True: "is" + adjective. relative=False: no relative clause on the object (when another
    clause follows, so that English never leaves it open which clause a word belongs to)."""
    nested = subj is not None
    subj = subj if nested else subject(rng, combos)
    p = subj.person
    past = tense == "past"
    if copula or rng.random() < 0.12:  # copula + predicate adjective
        adj = rng.choice(ADJECTIVES)
        if tense in ("present", "past"):
            aux = _en_be(p, past)
            rest, plain = "not" if negated else "", aux
        elif tense == "perfect":
            aux = _en_has(p)
            rest, plain = ("not been" if negated else "been"), f"{aux} been"
        else:
            aux = "will"
            rest, plain = ("not be" if negated else "be"), "will be"
        if negated and tense in ("present", "past"):
            plain = f"{aux} not"
        elif negated:
            plain = f"{aux} {rest}"
        de_fin = _de_finite(_SEIN, p, "past" if past else "present")
        final = ""
        if tense == "perfect":
            de_fin, final = _de_finite(_SEIN, p, "present"), "gewesen"
        elif tense == "future":
            de_fin, final = _de_finite(_WERDEN, p, "present"), "sein"
        middle = (["nicht"] if negated else []) + [adj.predicate]
        return Clause(subj, aux, rest, plain, adj.en, de_fin, middle, final, negated)

    verb = rng.choice(VERBS)
    if sub:
        combos.add(("sub-verb", verb.name))
    en_after: list[str] = []
    de_objs: list[str] = []
    uses_kein = has_relative = False
    if verb.frame in ("tr", "dat", "ditr"):
        if verb.frame == "ditr":
            rec = noun_phrase(rng, _pick_noun(rng, ("person", "animal")), combos)
            en_after.append(rec.en)
            de_objs.append(rec.de("dat"))
        obj_noun = _pick_noun(rng, verb.objects)
        obj = noun_phrase(rng, obj_noun, combos, quantified=not negated)
        if relative and not (negated or nested) and rng.random() < 0.2:
            obj, has_relative = with_relative(rng, obj, combos, obj_noun.animate), True
        en_after.append(obj.en)
        case = "dat" if verb.frame == "dat" else "acc"
        uses_kein = negated and obj.indefinite
        de_objs.append(obj.de(case, negated=uses_kein))
    if not (negated or has_relative) and rng.random() < 0.3:  # after a relative clause it would be ambiguous
        en_pp, de_pp = _pp(rng, verb, combos)
        en_after.append(en_pp)
    else:
        de_pp = ""
    base, s3, en_past, part = verb.en
    if tense in ("present", "past"):
        aux = _en_do(p, past)
        rest = f"not {base}" if negated else base
        plain = f"{aux} not {base}" if negated else (en_past if past else (s3 if p == "3sg" else base))
        de_fin, final = _de_finite(verb.de, p, tense), ""
    elif tense == "perfect":
        aux = _en_has(p)
        rest = f"not {part}" if negated else part
        plain = f"{aux} {rest}"
        de_fin, final = _de_finite(_HABEN if verb.aux == "haben" else _SEIN, p, "present"), verb.de[6]
    else:
        aux = "will"
        rest = f"not {base}" if negated else base
        plain = f"will {rest}"
        de_fin, final = _de_finite(_WERDEN, p, "present"), verb.de[0]
    # English multi-word verbs ("look for"): the object follows the whole verb, as it should
    middle = de_objs + (["nicht"] if negated and not uses_kein else []) + ([de_pp] if de_pp else [])
    return Clause(subj, aux, rest, plain, " ".join(en_after), de_fin, middle, final, negated)


# --- sentences ----------------------------------------------------------------------------
def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _tense(rng: random.Random) -> str:
    return rng.choices(TENSES, (4, 3, 3, 2))[0]


def sentence(rng: random.Random) -> tuple[str, str, set]:
    """One random (English, German) pair and the set of combinations it uses."""
    combos: set = set()
    kind = rng.choices(("plain", "adverb", "question", "report", "conj", "front"), (5, 2, 1.5, 1.5, 1.5, 1))[
        0
    ]
    neg = rng.random() < 0.2
    if kind == "plain":
        c = clause(rng, _tense(rng), neg, combos)
        en, de = c.english() + ".", c.german_main() + "."
    elif kind == "adverb":
        adv_en, adv_de, tenses = rng.choice(ADVERBS)
        c = clause(rng, rng.choice(tenses), neg, combos)
        en, de = f"{adv_en} {c.english()}.", c.german_main(front=adv_de) + "."
    elif kind == "question":
        c = clause(rng, _tense(rng), False, combos)
        en, de = c.english(question=True) + "?", c.german_question() + "?"
    elif kind == "report":
        s = subject(rng, combos)
        rv = rng.choice(REPORT_VERBS)
        past = rng.random() < 0.35
        p = s.person
        en_v = rv[2] if past else (rv[1] if p == "3sg" else rv[0])
        if past:
            de_v = rv[5] if p in ("1sg", "3sg") else rv[6]
        else:
            de_v = {"1sg": rv[7], "3sg": rv[3]}.get(p, rv[4])
        c = clause(rng, _tense(rng), neg, combos, sub=True)
        en = f"{s.en} {en_v} that {c.english()}."
        de = f"{s.de('nom')} {de_v}, dass {c.german_sub()}."
    else:
        main = clause(rng, _tense(rng), neg, combos, relative=kind == "front")
        c = clause(rng, _tense(rng), rng.random() < 0.2, combos, sub=True)
        conj_en, conj_de = rng.choice(CONJUNCTIONS)
        if kind == "conj":
            en = f"{main.english()} {conj_en} {c.english()}."
            de = f"{main.german_main()}, {conj_de} {c.german_sub()}."
        else:  # the subordinate clause first: it fills the front, the main verb comes next
            en = f"{conj_en} {c.english()}, {main.english()}."
            de = f"{main.german_main(front=f'{conj_de} {c.german_sub()},')}."
    for a, b in ((",.", "."), (",?", "?"), (",,", ",")):  # a relative clause's comma before punctuation
        de = de.replace(a, b)
    return _cap(en), _cap(de), combos


def split_of(en: str, combos: set) -> str:
    """The split a pair belongs to (see the module docstring)."""
    for c in combos:
        if c[0] == "rel-subject":
            return "compositional"
        if c[0] == "sub-verb" and c[1] in HELDOUT_SUB_VERBS:
            return "compositional"
        if c[0] == "adj-noun" and (c[1], c[2]) in _HELDOUT_PAIRS:
            return "compositional"
    h = _hash_percent("sentence:" + en)
    if h < SPLIT_PERCENT["validation"]:
        return "validation"
    if h < SPLIT_PERCENT["validation"] + SPLIT_PERCENT["test"]:
        return "test"
    return "train"


_HELDOUT_PAIRS = {(a.en, n.en) for a in ADJECTIVES for n in NOUNS if heldout_adj_noun(a, n)}
_SPLIT_SALT = {"train": 0, "validation": 1, "test": 2, "compositional": 3}


def heldout_kinds(combos: set) -> tuple[str, ...]:
    """Which held-out combinations a sentence holds: "rel-subject", "adj-noun", "sub-verb" (sorted)."""
    kinds = set()
    for c in combos:
        if c[0] == "rel-subject":
            kinds.add("rel-subject")
        elif c[0] == "sub-verb" and c[1] in HELDOUT_SUB_VERBS:
            kinds.add("sub-verb")
        elif c[0] == "adj-noun" and (c[1], c[2]) in _HELDOUT_PAIRS:
            kinds.add("adj-noun")
    return tuple(sorted(kinds))


def _draw(n: int, split: str, seed: int) -> list[tuple[str, str, set]]:
    check_int(n, "n", 0)
    check_int(seed, "seed", 0)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"grammar:{seed}:{_SPLIT_SALT[split]}")
    out: list[tuple[str, str, set]] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        en, de, combos = sentence(rng)
        tries += 1
        if tries > 200 * (n + 10):
            raise RuntimeError(f"could not draw {n} distinct sentences of split {split!r}")
        if en in seen or split_of(en, combos) != split:
            continue
        seen.add(en)
        out.append((en, de, combos))
    return out


def sample_pairs(n: int, split: str = "train", seed: int = 0) -> list[tuple[str, str]]:
    """n distinct (English, German) pairs of one split, the same for the same (n, split, seed).

    Sentences are drawn at random and kept when they fall in `split` and are new: a split is a
    set of sentences, never trained on when it is not "train"."""
    return [(en, de) for en, de, _ in _draw(n, split, seed)]


def sample_labelled(
    n: int, split: str = "compositional", seed: int = 0
) -> list[tuple[str, str, tuple[str, ...]]]:
    """`sample_pairs` with each pair's held-out kinds (`heldout_kinds`): the same pairs, in order."""
    return [(en, de, heldout_kinds(combos)) for en, de, combos in _draw(n, split, seed)]


def lexicon_size() -> dict[str, int]:
    """How many lemmas the grammar knows, by kind."""
    return {"nouns": len(NOUNS), "adjectives": len(ADJECTIVES), "verbs": len(VERBS)}
