#!/usr/bin/python3
"""Render the notebooks of the shared area to static HTML, incrementally.

Walks the source directory (the shared area), renders each readable *.ipynb that is new or
changed since its last rendering (nbconvert's HTML exporter, without executing anything),
optionally runs a linter (ruff, which reads notebooks itself) over the changed notebooks and
shows its findings on the page, copies the notebook for download, removes the pages of
notebooks that are gone, and writes an index page per directory. Hidden files and
directories, and notebooks the service user may not read, are never published.

A page is current when its modification time equals the notebook's: each run only stats the
tree, so a run without changes is cheap, and a restored older notebook is rendered again.

usage: publish.py --config /etc/publishing/publish.json
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("publish")

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left; }
.ok { color: #2a7a2a; } .findings { color: #a04000; }
"""
BANNER_STYLE = (
    "font-family: system-ui, sans-serif; background: #f4f4f4; border-bottom: 1px solid #ccc;"
    " padding: .5rem 1rem; margin: 0 0 1rem 0;"
)


@dataclass
class Config:
    source: Path
    output: Path
    url_path: str
    title: str
    lint_command: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str) -> Config:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            source=Path(data["source"]),
            output=Path(data["output"]),
            url_path=data["url_path"].rstrip("/"),
            title=data["title"],
            lint_command=data.get("lint_command", []),
        )


def visible(name: str) -> bool:
    return not name.startswith(".") and name != "__pycache__"


def find_notebooks(source: Path) -> dict[str, Path]:
    """Relative path -> file of every visible, readable notebook under source."""
    found: dict[str, Path] = {}
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if visible(d))
        for name in sorted(files):
            path = Path(root) / name
            if not (visible(name) and name.endswith(".ipynb") and path.is_file()):
                continue
            if not os.access(path, os.R_OK):
                log.info("not published, not readable for the publishing service: %s", path)
                continue
            found[str(path.relative_to(source))] = path
    return found


def page_of(output: Path, rel: str) -> Path:
    return output / (rel[: -len(".ipynb")] + ".html")


def is_current(page: Path, notebook: Path) -> bool:
    try:
        return page.stat().st_mtime_ns == notebook.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def write_atomic(path: Path, data: bytes, mtime_ns: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    if mtime_ns is not None:
        os.utime(tmp.name, ns=(mtime_ns, mtime_ns))
    os.replace(tmp.name, path)


def lint(command: list[str], notebooks: dict[str, Path]) -> dict[str, list[dict]]:
    """Findings of the linter per notebook (relative path), for the given notebooks."""
    if not command or not notebooks:
        return {}
    by_file = {str(p): rel for rel, p in notebooks.items()}
    result = subprocess.run(
        [*command, *by_file], capture_output=True, text=True, check=False, timeout=300
    )
    if result.returncode not in (0, 1):
        log.warning("linter failed (%s): %s", result.returncode, result.stderr.strip())
        return {}
    findings: dict[str, list[dict]] = {rel: [] for rel in notebooks}
    for item in json.loads(result.stdout or "[]"):
        rel = by_file.get(item.get("filename", ""))
        if rel is None:
            continue
        location = item.get("location") or {}
        findings[rel].append(
            {
                "code": item.get("code") or "",
                "message": item.get("message", ""),
                "cell": item.get("cell"),
                "row": location.get("row"),
            }
        )
    return findings


def banner(config: Config, rel: str, findings: list[dict] | None) -> str:
    parts = [
        f'<a href="{html.escape(config.url_path)}/">{html.escape(config.title)}</a> / '
        f"{html.escape(rel)} &middot; "
        f'<a href="{html.escape(Path(rel).name)}" download>download the notebook</a>'
    ]
    if findings is not None:
        if findings:
            items = "".join(
                f"<li>cell {f['cell'] if f['cell'] is not None else '?'}, line {f['row']}: "
                f"<code>{html.escape(f['code'])}</code> {html.escape(f['message'])}</li>"
                for f in findings
            )
            summary = f"<summary>Linter: {len(findings)} finding(s)</summary>"
            parts.append(f"<details>{summary}<ul>{items}</ul></details>")
        else:
            parts.append("<div>Linter: no findings</div>")
    return f'<div class="publishing-banner" style="{BANNER_STYLE}">' + "".join(parts) + "</div>"


def render(config: Config, rel: str, notebook: Path, findings: list[dict] | None) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    stat = notebook.stat()
    raw = notebook.read_bytes()
    exporter = HTMLExporter(template_name="lab")
    if hasattr(exporter, "sanitize_html"):
        # Notebook output is the author's HTML: strip scripts where nbconvert can.
        exporter.sanitize_html = True
    try:
        body, _ = exporter.from_notebook_node(nbformat.reads(raw.decode("utf-8"), as_version=4))
    except Exception as error:  # any broken notebook gets an error page, the run goes on
        log.warning("cannot render %s: %s", notebook, error)
        body = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(rel)}</title></head><body>"
            f"<p>This notebook could not be rendered: {html.escape(str(error))}</p></body></html>"
        )
    head, sep, rest = body.partition("<body")
    if sep:
        tag_end = rest.index(">") + 1
        body = head + sep + rest[:tag_end] + banner(config, rel, findings) + rest[tag_end:]
    target = config.output / rel
    write_atomic(target, raw, stat.st_mtime_ns)
    write_atomic(page_of(config.output, rel), body.encode("utf-8"), stat.st_mtime_ns)
    if findings is not None:
        write_atomic(target.with_suffix(".lint.json"), json.dumps(findings, indent=1).encode())


def remove_gone(output: Path, notebooks: dict[str, Path]) -> list[str]:
    removed = []
    for root, _dirs, files in os.walk(output):
        for name in files:
            if not name.endswith(".ipynb"):
                continue
            rel = str((Path(root) / name).relative_to(output))
            if rel not in notebooks:
                copy = output / rel
                for path in (copy, page_of(output, rel), copy.with_suffix(".lint.json")):
                    path.unlink(missing_ok=True)
                removed.append(rel)
    return removed


def rel_dir(path: Path) -> str:
    """A relative directory as the index keys it: "" for the top."""
    return "" if str(path) == "." else str(path)


def write_indexes(config: Config, notebooks: dict[str, Path]) -> None:
    """One index.html per directory that holds published notebooks, and the top one."""
    dirs: dict[str, tuple[set[str], list[str]]] = {"": (set(), [])}
    for rel in notebooks:
        parent = rel_dir(Path(rel).parent)
        parts = Path(parent).parts if parent else ()
        for depth in range(len(parts)):
            up = "/".join(parts[:depth])
            dirs.setdefault(up, (set(), []))[0].add(parts[depth])
            dirs.setdefault("/".join(parts[: depth + 1]), (set(), []))
        dirs.setdefault(parent, (set(), []))[1].append(rel)
    for directory, (subdirs, files) in dirs.items():
        rows = [
            f'<tr><td><a href="{html.escape(d)}/">{html.escape(d)}/</a></td><td></td></tr>'
            for d in sorted(subdirs)
        ]
        for rel in sorted(files):
            name = Path(rel).name
            lint_file = (config.output / rel).with_suffix(".lint.json")
            if lint_file.exists():
                count = len(json.loads(lint_file.read_text()))
                note = (
                    f'<span class="findings">{count} linter finding(s)</span>'
                    if count
                    else '<span class="ok">clean</span>'
                )
            else:
                note = ""
            page_name = html.escape(name[: -len(".ipynb")]) + ".html"
            rows.append(
                f'<tr><td><a href="{page_name}">{html.escape(name)}</a></td><td>{note}</td></tr>'
            )
        title = config.title + (f" / {directory}" if directory else "")
        page = (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            + ("" if not directory else '<p><a href="../">up</a></p>')
            + "<table><tr><th>Notebook</th><th>Static analysis</th></tr>"
            + "".join(rows)
            + "</table></body></html>"
        )
        target = config.output / directory / "index.html"
        data = page.encode("utf-8")
        if not target.exists() or target.read_bytes() != data:
            write_atomic(target, data)
    # Index pages of directories that hold no notebook any more.
    for root, _dirs, files in os.walk(config.output, topdown=False):
        rel = rel_dir(Path(root).relative_to(config.output))
        if rel not in dirs and "index.html" in files:
            (Path(root) / "index.html").unlink()
        if Path(root) != config.output and not any(Path(root).iterdir()):
            Path(root).rmdir()


def run(config: Config) -> int:
    started = time.monotonic()
    notebooks = find_notebooks(config.source)
    changed = {
        rel: p for rel, p in notebooks.items() if not is_current(page_of(config.output, rel), p)
    }
    findings = lint(config.lint_command, changed) if config.lint_command else {}
    for rel, path in changed.items():
        render(config, rel, path, findings.get(rel) if config.lint_command else None)
        log.info("rendered %s", rel)
    removed = remove_gone(config.output, notebooks)
    for rel in removed:
        log.info("removed %s", rel)
    write_indexes(config, notebooks)
    log.info(
        "%d notebooks, %d rendered, %d removed in %.1f s",
        len(notebooks),
        len(changed),
        len(removed),
        time.monotonic() - started,
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/etc/publishing/publish.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run(Config.load(args.config))


if __name__ == "__main__":
    sys.exit(main())
