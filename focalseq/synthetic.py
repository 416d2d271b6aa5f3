"""Synthetic taxonomic articles in YEDDA, for tests and benchmarks.

A document reads like a mycological paper: front matter and introduction, then taxon
treatments (a Nomenclature block -- binomial, author, ``sp. nov.``/``comb. nov.``, year,
MycoBank number -- followed by a multi-line Description with measurements in µm, shapes
and colours, then specimens, habitat, discussion and figure captions), and references
at the end, with page headers every page. Labels are Nomenclature, Description and
Misc-exposition in the relative line counts given by ``ratio``.

The cues are learnable from hashed tokens and shape features, and context matters:
descriptions follow nomenclature, discussions mention binomials and measurements too,
and a ``noise`` fraction of lines carries the text of another label while keeping its
true label, so only position and neighbours tell them apart.
"""
import logging
import posixpath
import random
from typing import Callable, Dict, List, Sequence, Tuple

from focalseq.text.yedda import format_yedda

logger = logging.getLogger(__name__)

NOMENCLATURE = "Nomenclature"
DESCRIPTION = "Description"
MISC = "Misc-exposition"
LABELS = (NOMENCLATURE, DESCRIPTION, MISC)

_GENERA = """Agaricus Amanita Boletus Cortinarius Coprinus Entoloma Hebeloma Inocybe
Lactarius Russula Mycena Marasmius Pholiota Psathyrella Tricholoma Clitocybe Gymnopus
Hygrocybe Lepiota Leccinum Suillus Xerocomus Cantharellus Craterellus Ramaria Clavulina
Hydnum Phellinus Fomitopsis Trametes Ganoderma Stereum Peniophora Hyphodontia Phanerochaete
Dendrothele Aleurodiscus Tulasnella Sebacina Exidia Auricularia Tremella Puccinia Uromyces
Cercospora Pseudocercospora Passalora Alternaria Phoma Diaporthe Valsaria Xylaria Daldinia
Hypoxylon Nectria Fusarium Penicillium Aspergillus Trichoderma Lecanora Parmelia Cladonia
Peziza Helvella Morchella Ascobolus Lachnum Hymenoscyphus Orbilia""".split()
_EPITHETS = """campestris muscaria edulis fragilis vulgaris alba nigra rubescens
lutescens brunnea fusca pallida aurantiaca sulphurea virescens cinerea argentea tenuissima
alternata radicina brassicicola glaucii purpurea cruenta griseola palmivora latenavicularis
sylvestris montana tropicalis orientalis occidentalis sinensis japonica americana europaea
africana australis borealis minuta gigantea longispora microspora macrospora
globispora ellipsospora verrucosa echinulata reticulata striata sulcata squamosa
velutina tomentosa glabra viscida lubrica hygrophana conica convexa umbonata depressa
infundibuliformis clavata cylindrica fusiformis ventricosa corticola lignicola terrestris
muscicola fimicola graminicola foliicola pakistanica yunnanensis brasiliensis""".split()
_AUTHORS = """Fr. Pers. Kummer Sacc. Berk. Peck Singer Quél. P. Karst. Cooke Massee
Bres. Romagn. Kühner Maire Noordel. Uljé Redhead Hesler Ellis Everh. Petch Rehm Höhn.
Speg. Pat. Boud. Lév. Oud. Petrak Crous U.Braun Deighton Chupp Rajchenb. Greslebin
Gorjón Tulloss Halling Mueller""".split()
_SURNAMES = """Smith Wang Li Zhang Kumar Silva Müller Jones Tanaka Novak Petersen
García Rossi Dubois Ivanova Khan Okafor Lindqvist Hernández Nguyen Kowalski Yamada
Andersson Costa Moreau""".split()
_JOURNALS = """Mycotaxon Persoonia Mycologia Sydowia Mycol.Res. Fungal.Divers.
Stud.Mycol. Nova.Hedwigia Kew.Bull. Mycoscience Bull.Soc.Mycol.France""".split()
_COUNTRIES = """CHINA PAKISTAN ARGENTINA BRAZIL USA CANADA FRANCE SWEDEN JAPAN
INDIA KENYA MEXICO SPAIN ITALY NORWAY""".split()
_PLACES = """Yunnan Sichuan Punjab Chubut Misiones Oregon Ontario Vosges Uppland
Hokkaido Kerala Nairobi Oaxaca Asturias Piedmont Telemark""".split()
_SUBSTRATES = """soil leaf-litter decayed-wood bark living-leaves dung moss
burnt-ground conifer-needles grass-roots""".split()
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_HERBARIA = "BPI K NY PC PDD UPS CUP HKAS TENN L".split()
_COLOURS = """white cream ochre yellowish brown pale-brown dark-brown reddish-brown
greyish olivaceous pinkish vinaceous violet blackish hyaline orange""".split()
_SHAPES = """globose subglobose ellipsoid broadly-ellipsoid oblong cylindrical
fusiform clavate amygdaliform lacrimiform reniform allantoid ovoid obovoid""".split()
_SURFACES = """smooth verrucose echinulate reticulate striate punctate rugulose
tuberculate""".split()
_ORGANS = """Basidiospores Ascospores Conidia Spores Basidia Asci Cheilocystidia
Pleurocystidia Paraphyses Hyphae Chlamydospores""".split()
_MACRO = """Pileus Stipe Lamellae Context Basidiomata Ascomata Stroma Annulus
Hymenophore""".split()
_PILEUS_SHAPES = """convex plano-convex campanulate conical umbonate depressed
infundibuliform applanate hemispherical""".split()
_MARGINS = """inrolled straight striate crenulate appendiculate incurved
undulating""".split()
_TOPICS = """diversity distribution phylogeny ecology taxonomy systematics
morphology biogeography""".split()
_METHODS = """ITS LSU rpb2 tef1 SSU""".split()
_TITLE_WORDS = """new species records genus fungi from notes on revision studies
in the of and a taxonomic phylogenetic contribution knowledge""".split()
_PHRASES = """Material was collected during several field trips and dried at 40 °C.
Sections were mounted in 3% KOH and Melzer's reagent.
Colour terms follow the Methuen Handbook of Colour.
DNA was extracted from dried specimens with a commercial kit.
Sequences were aligned and analysed with maximum likelihood.
The phylogenetic tree shows a well supported clade.
This species is only known from the type locality.
Further collections are needed to assess its variability.
We thank the curators of the herbaria for the loan of specimens.
The morphology agrees well with the original description.""".split("\n")

def _rng_range(rng: random.Random, low: int, high: int) -> str:
    a = rng.randint(low, high)
    return f"{a}–{a + rng.randint(1, max(1, high // 2))}"


def _binomial(rng: random.Random, abbreviated: bool = False) -> str:
    genus = rng.choice(_GENERA)
    if abbreviated:
        genus = genus[0] + "."
    return f"{genus} {rng.choice(_EPITHETS)}"


def _author(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.3:
        return f"({rng.choice(_AUTHORS)}) {rng.choice(_AUTHORS)}"
    if r < 0.5:
        return f"{rng.choice(_AUTHORS)} & {rng.choice(_AUTHORS)}"
    return rng.choice(_AUTHORS)


def _year(rng: random.Random) -> int:
    return rng.randint(1821, 2023)


# -- one line of each kind -----------------------------------------------------------

def _nomenclature_lines(rng: random.Random, k: int) -> List[str]:
    """A nomenclature block of exactly k lines: name, MycoBank, basionym, synonyms."""
    act = rng.choice(("sp. nov.", "sp. nov.", "comb. nov.", "var. nov.", "stat. nov.",
                      "nom. nov."))
    name = _binomial(rng)
    if act == "var. nov.":
        name += f" var. {rng.choice(_EPITHETS)}"
    first = f"{name} {_author(rng)}, {act}"
    if rng.random() < 0.4:
        first += f" Fig. {rng.randint(1, 12)}"
    if rng.random() < 0.2:
        first = f"{rng.randint(1, 40)}. {first}"
    out = [first]
    while len(out) < k:
        r = rng.random()
        if r < 0.35:
            out.append(f"MycoBank MB {rng.randint(100000, 899999)}")
        elif r < 0.7:
            out.append(f"≡ {_binomial(rng)} {_author(rng)}, {rng.choice(_JOURNALS)} "
                       f"{rng.randint(1, 120)}: {rng.randint(1, 600)}. {_year(rng)}.")
        else:
            out.append(f"= {_binomial(rng)} {rng.choice(_AUTHORS)}, "
                       f"{rng.choice(_JOURNALS)} {rng.randint(1, 120)}: "
                       f"{rng.randint(1, 600)} ({_year(rng)}).")
    return out


def _description_sentence(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.3:
        return (f"{rng.choice(_ORGANS)} {_rng_range(rng, 3, 12)} × {_rng_range(rng, 2, 8)} "
                f"µm, {rng.choice(_SHAPES)}, {rng.choice(_SURFACES)}, "
                f"{rng.choice(_COLOURS)}.")
    if r < 0.5:
        return (f"{rng.choice(_MACRO)} {_rng_range(rng, 5, 60)} mm diam., "
                f"{rng.choice(_PILEUS_SHAPES)}, {rng.choice(_COLOURS)} to "
                f"{rng.choice(_COLOURS)}, margin {rng.choice(_MARGINS)}.")
    if r < 0.65:
        return (f"{rng.choice(_ORGANS)} {rng.choice(_SHAPES)}, thin-walled, "
                f"{_rng_range(rng, 2, 9)} µm wide, with clamp connections.")
    if r < 0.8:
        return (f"{rng.choice(_MACRO)} {rng.choice(_COLOURS)}, {rng.choice(_SURFACES)}, "
                f"becoming {rng.choice(_COLOURS)} when bruised; odour indistinct.")
    return (f"{rng.choice(_ORGANS)} {rng.randint(2, 8)}-spored, "
            f"{_rng_range(rng, 15, 40)} × {_rng_range(rng, 4, 12)} µm, "
            f"{rng.choice(_SHAPES)}, amyloid.")


def _misc_sentence(rng: random.Random, kind: str) -> str:
    if kind == "specimens":
        return (f"{rng.choice(_COUNTRIES)}. {rng.choice(_PLACES)}: on "
                f"{rng.choice(_SUBSTRATES)}, {rng.randint(1, 28)} {rng.choice(_MONTHS)} "
                f"{rng.randint(1950, 2023)}, leg. {rng.choice(_SURNAMES)} "
                f"{rng.randint(1, 999)} ({rng.choice(_HERBARIA)}"
                f"{', holotype' if rng.random() < 0.3 else ''}).")
    if kind == "references":
        return (f"{rng.choice(_SURNAMES)} {rng.choice('ABCDEFGHJKLMNPRST')}, "
                f"{rng.choice(_SURNAMES)} {rng.choice('ABCDEFGHJKLMNPRST')}. "
                f"{rng.randint(1950, 2023)}. {rng.choice(_TITLE_WORDS).capitalize()} "
                f"{rng.choice(_TITLE_WORDS)} {rng.choice(_TITLE_WORDS)} "
                f"{rng.choice(_GENERA)}. {rng.choice(_JOURNALS)} {rng.randint(1, 120)}: "
                f"{rng.randint(1, 300)}–{rng.randint(301, 700)}.")
    if kind == "discussion":
        r = rng.random()
        if r < 0.35:
            return (f"{_binomial(rng, rng.random() < 0.5)} is similar to "
                    f"{_binomial(rng)} but differs in its larger basidiospores "
                    f"({_rng_range(rng, 6, 14)} µm long) and {rng.choice(_COLOURS)} pileus.")
        if r < 0.6:
            return (f"According to {rng.choice(_SURNAMES)} ({_year(rng)}), this taxon "
                    f"belongs in {rng.choice(_GENERA)} sect. {rng.choice(_EPITHETS).title()}.")
        return rng.choice(_PHRASES)
    if kind == "habitat":
        return (f"Habitat: solitary to gregarious on {rng.choice(_SUBSTRATES)} in "
                f"{rng.choice(_PLACES)}, {rng.choice(_MONTHS)}–{rng.choice(_MONTHS)}.")
    # introduction
    r = rng.random()
    if r < 0.4:
        return (f"The genus {rng.choice(_GENERA)} comprises about {rng.randint(5, 900)} "
                f"species worldwide ({rng.choice(_SURNAMES)} et al. {_year(rng)}).")
    if r < 0.7:
        return (f"Studies on the {rng.choice(_TOPICS)} of fungi in {rng.choice(_PLACES)} "
                f"were based on {rng.choice(_METHODS)} sequences and morphology.")
    return rng.choice(_PHRASES)


def _wrap(rng: random.Random, make: Callable[[], str], k: int) -> List[str]:
    """Exactly k lines of running text from sentences, broken near a page width."""
    if k <= 0:
        return []
    width = rng.randint(62, 92)
    text = make()
    while len(text) < k * width:
        text += " " + make()
    lines = []
    pos = 0
    for _ in range(k - 1):
        cut = text.rfind(" ", pos, pos + width)
        if cut <= pos:
            cut = text.find(" ", pos + 1)
            if cut < 0:
                cut = len(text)
        lines.append(text[pos:cut])
        pos = cut + 1
    last = text[pos:pos + width]
    if len(text) - pos > width:
        # End the paragraph on a sentence end, or failing that on a word end.
        cut = last.rfind(". ")
        if cut > 0:
            last = last[:cut + 1]
        else:
            cut = last.rfind(" ")
            last = (last[:cut] if cut > 0 else last).rstrip(" ,;:")
    last = last.rstrip()
    lines.append(last if last.endswith(".") else last + ".")
    return [line if line.strip() else "." for line in lines]


def _misc_block(rng: random.Random, kind: str, k: int) -> List[str]:
    if kind == "title":
        words = [rng.choice(_TITLE_WORDS) for _ in range(rng.randint(4, 9))]
        out = [" ".join(words).capitalize() + f" {_binomial(rng)}"]
        out.append(", ".join(f"{rng.choice('ABCDEFGHJKLMNPRST')}. {rng.choice(_SURNAMES)}"
                             for _ in range(rng.randint(1, 4))))
        out.append(f"Department of Biology, University of {rng.choice(_PLACES)}")
        return out[:k]
    if kind == "figure":
        lines = [f"Fig. {rng.randint(1, 12)}. {_binomial(rng)} (holotype). a. Basidiomata. "
                 f"b. Spores. Bars = {rng.choice((5, 10, 20))} µm."]
        return (lines + _wrap(rng, lambda: _misc_sentence(rng, "discussion"), k - 1))[:k]
    if kind == "specimens":
        lines = _wrap(rng, lambda: _misc_sentence(rng, "specimens"), k)
        lines[0] = "Specimens examined: " + lines[0]
        return lines
    if kind == "references":
        return [_misc_sentence(rng, "references") for _ in range(k)]
    if kind == "habitat":
        lines = _wrap(rng, lambda: _misc_sentence(rng, "discussion"), k)
        lines[0] = _misc_sentence(rng, "habitat")
        return lines
    return _wrap(rng, lambda: _misc_sentence(rng, kind), k)


def _page_header(rng: random.Random, page: int) -> str:
    text = (f"{page} ... {rng.choice(_SURNAMES)} & {rng.choice(_SURNAMES)}"
            if page % 2 == 0 else
            f"New {rng.choice(_GENERA)} species from {rng.choice(_PLACES)} ... {page}")
    return ("\f" + text) if rng.random() < 0.7 else text


def _split(rng: random.Random, total: int, parts: int, minimum: int = 0) -> List[int]:
    """Sizes summing to total, each near total / parts (and >= minimum when possible)."""
    if parts <= 0:
        return []
    base = min(minimum, total // parts)
    rest = total - base * parts
    weights = [rng.uniform(0.5, 1.5) for _ in range(parts)]
    scale = rest / sum(weights)
    sizes = [base + int(w * scale) for w in weights]
    for i in range(total - sum(sizes)):
        sizes[i % parts] += 1
    return sizes


def _counts(rng: random.Random, n_lines: int, ratio: Sequence[float]) -> List[int]:
    total = float(sum(ratio))
    expected = [n_lines * r / total for r in ratio[:2]]
    # Stochastic rounding keeps the corpus-level ratio unbiased for short documents.
    n_nom, n_desc = (int(e) + (rng.random() < e - int(e)) for e in expected)
    if n_desc and not n_nom:
        n_nom = 1
    n_nom = min(n_nom, n_lines)
    n_desc = min(n_desc, n_lines - n_nom)
    return [n_nom, n_desc, n_lines - n_nom - n_desc]


def _validate(n_lines: int, ratio: Sequence[float], noise: float) -> None:
    if not isinstance(n_lines, int) or n_lines < 0:
        raise ValueError(f"n_lines: must be an int >= 0, got {n_lines!r}")
    if (len(ratio) != 3 or any(not isinstance(r, (int, float)) or r < 0 for r in ratio)
            or sum(ratio) <= 0):
        raise ValueError(f"ratio: must be three non-negative numbers (Nomenclature, "
                         f"Description, Misc-exposition) with a positive sum, got {ratio!r}")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise: must be in [0, 1], got {noise!r}")


def generate_document(rng: random.Random, n_lines: int, ratio: Sequence[float] = (1, 10, 100),
                      noise: float = 0.05, blank_lines: bool = False
                      ) -> List[Tuple[str, str]]:
    """Generates one synthetic taxonomic article.

    Args:
        rng: source of randomness; the output depends only on its state.
        n_lines: number of non-blank lines.
        ratio: relative line counts of Nomenclature, Description, Misc-exposition.
        noise: fraction of lines whose text is replaced by a line of another label
            (the label is kept).
        blank_lines: also emit ``("", label)`` entries between paragraphs, as
            :func:`~focalseq.text.yedda.format_yedda` writes blank lines.

    Returns:
        ``(text, label)`` pairs in document order.

    Raises:
        ValueError: a negative ``n_lines``, a malformed ``ratio`` or ``noise`` outside
            [0, 1].
    """
    _validate(n_lines, ratio, noise)
    if n_lines == 0:
        return []
    n_nom, n_desc, n_misc = _counts(rng, n_lines, ratio)

    # Page headers are Misc lines placed every page; the rest of Misc is split into
    # front matter, the text after each treatment and references.
    page_len = rng.randint(40, 60)
    n_headers = min(n_misc, n_lines // page_len)
    misc_free = n_misc - n_headers
    # Nomenclature blocks of about 1-3 lines, one per taxon treatment.
    n_units = min(n_nom, max(1, round(n_nom / rng.uniform(1.2, 2.2)))) if n_nom else 0
    units = _split(rng, n_nom, n_units, 1)
    desc_sizes = _split(rng, n_desc, len(units), 1)
    misc_sizes = _split(rng, misc_free, len(units) + 2, 1)

    paragraphs: List[Tuple[str, List[str]]] = []

    def misc(kinds: Sequence[str], k: int) -> None:
        while k > 0:
            step = min(k, rng.randint(2, 9))
            paragraphs.append((MISC, _misc_block(rng, rng.choice(kinds), step)))
            k -= step

    front = misc_sizes[0]
    if front:
        paragraphs.append((MISC, _misc_block(rng, "title", min(front, 3))))
        misc(("introduction", "introduction", "discussion"), front - min(front, 3))
    for u, k in enumerate(units):
        paragraphs.append((NOMENCLATURE, _nomenclature_lines(rng, k)))
        d = desc_sizes[u]
        while d > 0:
            step = min(d, rng.randint(3, 10))
            paragraphs.append((DESCRIPTION,
                               _wrap(rng, lambda: _description_sentence(rng), step)))
            d -= step
        after = misc_sizes[u + 1]
        first = min(after, rng.randint(1, 5))
        if first:
            paragraphs.append((MISC, _misc_block(rng, "specimens", first)))
        misc(("discussion", "discussion", "figure", "habitat", "introduction"), after - first)
    misc(("references",), misc_sizes[-1])

    out: List[Tuple[str, str]] = []
    page = rng.randint(1, 400)
    n_body = 0
    headers_left = n_headers
    for label, lines in paragraphs:
        if blank_lines and out:
            out.append(("", label))
        for text in lines:
            if headers_left and n_body and n_body % page_len == 0:
                if blank_lines and out[-1][0]:
                    out.append(("", MISC))
                out.append((_page_header(rng, page), MISC))
                if blank_lines:
                    out.append(("", MISC))
                page += 1
                headers_left -= 1
            out.append((text, label))
            n_body += 1
    while headers_left:  # short documents: the remaining headers close the document
        out.append((_page_header(rng, page), MISC))
        page += 1
        headers_left -= 1

    if noise > 0:
        makers: Dict[str, Callable[[], str]] = {
            NOMENCLATURE: lambda: _nomenclature_lines(rng, 1)[0],
            DESCRIPTION: lambda: _wrap(rng, lambda: _description_sentence(rng), 1)[0],
            MISC: lambda: _wrap(rng, lambda: _misc_sentence(rng, "discussion"), 1)[0],
        }
        for i, (text, label) in enumerate(out):
            if text and rng.random() < noise:
                other = rng.choice([lab for lab in LABELS if lab != label])
                out[i] = (makers[other](), label)
    return out


def generate_corpus(out_dir: str, n_docs: int = 40, lines_per_doc: int = 200,
                    ratio: Sequence[float] = (1, 10, 100), noise: float = 0.05,
                    seed: int = 0, jitter: float = 0.25) -> List[str]:
    """Writes a synthetic YEDDA corpus, one article per file.

    Args:
        out_dir: directory or URL to write into (created if missing).
        n_docs: number of files, named ``doc_00000.txt.ann`` onwards.
        lines_per_doc: mean number of non-blank lines per document.
        ratio: relative line counts of Nomenclature, Description, Misc-exposition.
        noise: see :func:`generate_document`.
        seed: the corpus is a function of this seed and the other arguments.
        jitter: document lengths vary uniformly by this fraction around the mean.

    Returns:
        The paths written, in order.
    """
    _validate(lines_per_doc, ratio, noise)
    return write_documents(out_dir, n_docs, lines_per_doc, seed, jitter,
                           lambda rng, n: generate_document(rng, n, ratio, noise,
                                                            blank_lines=True))


def generate_binary_corpus(out_dir: str, labels: Sequence[str] = (NOMENCLATURE, MISC),
                           n_docs: int = 40, lines_per_doc: int = 200,
                           ratio: Sequence[float] = (1, 10), noise: float = 0.05,
                           seed: int = 0, jitter: float = 0.25) -> List[str]:
    """Writes a two-label YEDDA corpus: the taxonomic articles without Description.

    Nomenclature lines get ``labels[0]`` (the positive, rare label) and the rest
    ``labels[1]``, in the line counts of ``ratio`` (positive, negative; about 1:10 by
    default). Arguments otherwise as :func:`generate_corpus`.
    """
    if len(labels) != 2 or len(set(labels)) != 2:
        raise ValueError(f"labels: expected two distinct labels [positive, negative], "
                         f"got {list(labels)!r}")
    if len(ratio) != 2:
        raise ValueError(f"ratio: expected two numbers (positive, negative), got {ratio!r}")
    three = (ratio[0], 0, ratio[1])
    _validate(lines_per_doc, three, noise)
    names = {NOMENCLATURE: labels[0], MISC: labels[1]}

    def document(rng, n):
        return [(text, names[label]) for text, label in
                generate_document(rng, n, three, noise, blank_lines=True)]

    return write_documents(out_dir, n_docs, lines_per_doc, seed, jitter, document)


def write_documents(out_dir: str, n_docs: int, lines_per_doc: int, seed: int,
                    jitter: float, document: Callable[[random.Random, int], list]
                    ) -> List[str]:
    """Writes `n_docs` YEDDA files ``doc_00000.txt.ann`` ... of `document(rng, n_lines)`.

    Document i draws from ``random.Random(seed * 1_000_003 + i)`` and has
    `lines_per_doc` lines give or take `jitter` of it.
    """
    if not isinstance(n_docs, int) or n_docs < 0:
        raise ValueError(f"n_docs: must be an int >= 0, got {n_docs!r}")
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter: must be in [0, 1), got {jitter!r}")
    from focalseq import fileio

    paths = []
    for i in range(n_docs):
        rng = random.Random(seed * 1_000_003 + i)
        spread = int(lines_per_doc * jitter)
        n_lines = max(1, lines_per_doc + rng.randint(-spread, spread)) if lines_per_doc else 0
        path = posixpath.join(out_dir, f"doc_{i:05d}.txt.ann")
        # fsspec: out_dir may be a URL of the cluster's shared store.
        fileio.write_bytes(path, format_yedda(document(rng, n_lines)).encode("utf-8"))
        paths.append(path)
    logger.info("wrote %d synthetic documents to %s", n_docs, out_dir)
    return paths
