"""Publish the executed lessons, offline: reveal.js slide decks and a static HTML site.

    python tools/publish.py slides OUT_DIR [NOTEBOOK ...]   # OUT_DIR/NN_name.slides.html + index.html
    python tools/publish.py site OUT_DIR [NOTEBOOK ...]     # OUT_DIR/index.html + NN_name.html

Without notebooks, every `notebooks/NN_*.ipynb`. Both use nbconvert's Python API on the saved
outputs (nothing is re-executed): the slides use its reveal template, the site its lab template, each
through a small template of our own (`TEMPLATES`) that drops everything nbconvert would load from a
CDN (require.js, jQuery, mermaid, the widget renderer) and points reveal.js and MathJax 2 (the version
nbconvert's templates drive, through `MathJax.Hub`) at copies in OUT_DIR, taken from the npm packages
in tools/web/node_modules (`make web-assets`, `npm ci` on tools/web/package-lock.json). The output
folder then works from any static server, or straight from the disk, with no network.

Slides: every cell's slide type comes from tools/slide_metadata.py, applied in memory, so a lesson
gives a deck whether or not its file carries the metadata. A (sub)slide taller than the screen
scrolls. Site: an index (the course README's introduction and a table of the lessons, titled by
each lesson's first heading), previous / next links on every lesson page, and exercise solutions
folded away under "Show a solution". The lessons' interactive explorers need a running kernel:
both outputs show a short note in their place.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from nbconvert import HTMLExporter, SlidesExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slide_metadata  # noqa: E402  (tools/ is not a package)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NODE_MODULES = REPO / "tools" / "web" / "node_modules"

# What the pages load, relative to each package (the rest of the packages is not copied).
MATHJAX_FILES = [
    "MathJax.js",
    "config/TeX-AMS_CHTML-full.js",
    "config/Safe.js",
    "extensions/*.js",
    "extensions/TeX",
    "jax/input/TeX",
    "jax/output/CommonHTML",
    "jax/element",
    "localization/en",
    "fonts/HTML-CSS/TeX/woff",
]
REVEAL_FILES = [
    "LICENSE",
    "dist/reveal.js",
    "dist/reveal.css",
    "dist/theme/white.css",
    "dist/theme/fonts/source-sans-pro",
    "plugin/notes/notes.js",
]
MATHJAX_CONFIG = "MathJax.js?config=TeX-AMS_CHTML-full,Safe"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    '<div class="course-widget-note">An interactive explorer runs here when the lesson is open in '
    "JupyterLab (<code>make lab</code>): it needs a running kernel.</div>"
)

SLIDES_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{#- nbconvert's reveal template, offline: no require.js, jQuery, mermaid or widget renderer from a CDN -#}
{% block html_head_js %}{% endblock html_head_js %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_css %}
<style type="text/css">
.reveal .slides section:not(.stack) { max-height: {{ resources.reveal.height }}px; overflow-y: auto; }
.reveal .slides section { text-align: left; }
.reveal .jp-InputArea-editor pre, .reveal .jp-OutputArea-output pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.course-widget-note { border-left: 4px solid #888; padding: 0.3em 0.8em; font-style: italic; }
</style>
{% endblock html_head_css %}
{% block footer_js %}
<script src="{{ resources.reveal.url_prefix }}/dist/reveal.js"></script>
<script src="{{ resources.reveal.url_prefix }}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({
  controls: true,
  progress: true,
  hash: true,
  center: false,
  transition: "{{ resources.reveal.transition }}",
  slideNumber: "{{ resources.reveal.number }}",
  width: {{ resources.reveal.width }},
  height: {{ resources.reveal.height }},
  plugins: [RevealNotes],
});
Reveal.on('slidechanged', function (event) {
  if (window.MathJax && MathJax.Hub) MathJax.Hub.Queue(['Rerender', MathJax.Hub, event.currentSlide]);
});
</script>
{% endblock footer_js %}
"""

SITE_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{#- nbconvert's lab template, offline: no require.js, mermaid or widget renderer from a CDN -#}
{% block html_head_js %}{% endblock html_head_js %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
{% block extra_css %}<link rel="stylesheet" href="_static/course.css">{% endblock extra_css %}
{% block body_header %}{{ super() }}
{{ resources.course_nav }}
{% endblock body_header %}
{% block body_footer %}{{ resources.course_nav }}
{{ super() }}{% endblock body_footer %}
{% block any_cell %}
{%- if 'solution' in cell.metadata.get('tags', []) -%}
<details class="course-solution"><summary>Show a solution</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{% endblock any_cell %}
"""

SITE_CSS = """\
.course-nav { display: flex; gap: 1.5em; align-items: center; justify-content: space-between;
  max-width: 1100px; margin: 0 auto; padding: 0.6em 1em; font: 15px/1.4 system-ui, sans-serif;
  border-bottom: 1px solid #ddd; }
.course-nav:last-of-type { border-top: 1px solid #ddd; border-bottom: none; }
.course-nav a { text-decoration: none; }
.course-nav .course-nav-here { color: #555; text-align: center; flex: 1; }
.course-solution { margin: 0.5em 0 0.5em 2em; }
.course-solution > summary { cursor: pointer; color: #1565c0; font: 14px system-ui, sans-serif; }
.course-widget-note { border-left: 4px solid #888; padding: 0.3em 0.8em; font-style: italic; }
body.course-index { max-width: 960px; margin: 0 auto; padding: 1em 1.5em 3em;
  font: 16px/1.55 system-ui, sans-serif; color: #222; }
.course-index a.anchor-link { display: none; }
.course-index table { border-collapse: collapse; width: 100%; }
.course-index th, .course-index td { text-align: left; padding: 0.35em 0.6em;
  border-bottom: 1px solid #e4e4e4; vertical-align: top; }
"""

INDEX_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
{css}
<script src="{mathjax}"></script>
<script type="text/x-mathjax-config">
MathJax.Hub.Config({{tex2jax: {{inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], processEscapes: true}},
                    messageStyle: 'none'}});
</script>
</head>
<body class="course-index">
{body}
</body>
</html>
"""


def lesson_title(nb: dict, fallback: str) -> str:
    """The text of the lesson's first markdown heading (any level), else `fallback`."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            m = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", cell["source"], flags=re.M)
            if m:
                return m.group(1)
    return fallback


def lesson_paths(notebooks: list[Path] | None) -> list[Path]:
    paths = sorted(notebooks) if notebooks else sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise SystemExit(f"no lessons found: expected notebooks/NN_name.ipynb files under {NOTEBOOKS}")
    for p in paths:
        if p.suffix != ".ipynb" or not p.is_file():
            raise SystemExit(f"expected an existing .ipynb file, got {p}")
    return paths


def read_lesson(path: Path) -> nbformat.NotebookNode:
    """The lesson as saved, with its widget outputs replaced by a note (they need a kernel)."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if WIDGET_MIME in out.get("data", {}):
                out["data"] = {"text/html": WIDGET_NOTE, "text/plain": "(interactive explorer)"}
    return nb


def copy_assets(package: str, files: list[str], dest: Path) -> None:
    """Copy `files` (files or folders) of the npm package `package` into `dest`."""
    root = NODE_MODULES / package
    if not (root / "package.json").is_file():
        raise SystemExit(
            f"{root} is missing: run `make web-assets` (npm ci in tools/web) to install reveal.js and "
            "MathJax from the npm registry"
        )
    for pattern in files:
        sources = sorted(root.glob(pattern))
        if not sources:
            raise SystemExit(f"{root} has no {pattern}: reinstall it with `make web-assets`")
        for src in sources:
            dst = dest / src.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.map"))
            else:
                shutil.copy2(src, dst)


def _markdown(text: str) -> str:
    return markdown2html_mistune(text)


def build_slides(out_dir: Path, notebooks: list[Path] | None = None) -> list[Path]:
    """One reveal.js deck per lesson in `out_dir`, with reveal.js and MathJax beside them."""
    paths = lesson_paths(notebooks)
    out_dir.mkdir(parents=True, exist_ok=True)
    copy_assets("reveal.js", REVEAL_FILES, out_dir / "reveal.js")
    copy_assets("mathjax", MATHJAX_FILES, out_dir / "mathjax")
    exporter = SlidesExporter(
        extra_loaders=[DictLoader({"course_slides.html.j2": SLIDES_TEMPLATE})],
        template_file="course_slides.html.j2",
        reveal_url_prefix="reveal.js",
        reveal_theme="white",
        reveal_width="1100",
        reveal_height="800",
        reveal_number="c/t",
        mathjax_url=f"mathjax/{MATHJAX_CONFIG}",
        embed_images=True,
    )
    written, rows = [], []
    for path in paths:
        nb = read_lesson(path)
        slide_metadata.apply(nb)
        nb.metadata["title"] = lesson_title(nb, path.stem)
        body, _ = exporter.from_notebook_node(
            nb, resources={"metadata": {"name": path.stem, "path": str(path.parent)}}
        )
        target = out_dir / f"{path.stem}.slides.html"
        target.write_text(body, encoding="utf-8")
        written.append(target)
        rows.append(f'<li><a href="{target.name}">{html.escape(nb.metadata["title"])}</a></li>')
    index = INDEX_PAGE.format(
        title="Slides",
        css=f"<style>{SITE_CSS}</style>",
        mathjax=f"mathjax/{MATHJAX_CONFIG}",
        body="<h1>Slides</h1>\n<p>One reveal.js deck per lesson: arrow keys move, <kbd>s</kbd> opens the "
        "speaker view, <kbd>Esc</kbd> the overview.</p>\n<ul>\n" + "\n".join(rows) + "\n</ul>",
    )
    (out_dir / "index.html").write_text(index, encoding="utf-8")
    return written


def _nav(prev: tuple[str, str] | None, nxt: tuple[str, str] | None, here: str) -> str:
    def link(item: tuple[str, str] | None, rel: str, arrow: str) -> str:
        if item is None:
            return "<span></span>"
        href, title = item
        text = f"{arrow} {html.escape(title)}" if rel == "prev" else f"{html.escape(title)} {arrow}"
        return f'<a class="course-nav-{rel}" rel="{rel}" href="{href}">{text}</a>'

    return (
        '<nav class="course-nav">'
        f"{link(prev, 'prev', '&larr;')}"
        f'<span class="course-nav-here"><a href="index.html">Course home</a> · {html.escape(here)}</span>'
        f"{link(nxt, 'next', '&rarr;')}"
        "</nav>"
    )


def readme_intro(readme: Path = REPO / "README.md") -> str:
    """The README up to its first `## ` section: the course's title and introduction, as HTML."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else "# The course\n"
    intro = re.split(r"^## ", text, maxsplit=1, flags=re.M)[0]
    # links to the lessons point at their pages
    intro = re.sub(r"\]\(notebooks/([^)]+)\.ipynb\)", r"](\1.html)", intro)
    return _markdown(intro)


def build_site(out_dir: Path, notebooks: list[Path] | None = None) -> list[Path]:
    """An index and one page per lesson in `out_dir`, with MathJax and a style sheet in _static/."""
    paths = lesson_paths(notebooks)
    out_dir.mkdir(parents=True, exist_ok=True)
    static = out_dir / "_static"
    copy_assets("mathjax", MATHJAX_FILES, static / "mathjax")
    static.mkdir(exist_ok=True)
    (static / "course.css").write_text(SITE_CSS, encoding="utf-8")
    exporter = HTMLExporter(
        extra_loaders=[DictLoader({"course_site.html.j2": SITE_TEMPLATE})],
        template_name="lab",
        template_file="course_site.html.j2",
        mathjax_url=f"_static/mathjax/{MATHJAX_CONFIG}",
        embed_images=True,
    )
    lessons = [(p, read_lesson(p)) for p in paths]
    titles = [lesson_title(nb, p.stem) for p, nb in lessons]
    pages = [f"{p.stem}.html" for p, _ in lessons]
    written, rows = [], []
    for i, (path, nb) in enumerate(lessons):
        prev = (pages[i - 1], titles[i - 1]) if i > 0 else None
        nxt = (pages[i + 1], titles[i + 1]) if i + 1 < len(lessons) else None
        nb.metadata["title"] = titles[i]
        resources = {
            "metadata": {"name": path.stem, "path": str(path.parent)},
            "course_nav": _nav(prev, nxt, titles[i]),
        }
        body, _ = exporter.from_notebook_node(nb, resources=resources)
        target = out_dir / pages[i]
        target.write_text(body, encoding="utf-8")
        written.append(target)
        number = path.stem.split("_", 1)[0]
        rows.append(f'<tr><td>{number}</td><td><a href="{pages[i]}">{html.escape(titles[i])}</a></td></tr>')
    body = (
        readme_intro()
        + "\n<h2>The lessons</h2>\n<table>\n<thead><tr><th>#</th><th>lesson</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>\n<p>Each page is a lesson as executed, outputs and figures included. To run "
        "the code, change it and use the interactive explorers, open the lessons in JupyterLab "
        "(<code>make lab</code>).</p>"
    )
    index = INDEX_PAGE.format(
        title="Attention Is All You Need, built by hand",
        css='<link rel="stylesheet" href="_static/course.css">',
        mathjax=f"_static/mathjax/{MATHJAX_CONFIG}",
        body=body,
    )
    (out_dir / "index.html").write_text(index, encoding="utf-8")
    return [out_dir / "index.html", *written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["slides", "site"])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    build = build_slides if args.what == "slides" else build_site
    written = build(args.out_dir, args.notebooks or None)
    print(f"{args.what}: {len(written)} page(s) in {args.out_dir} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
