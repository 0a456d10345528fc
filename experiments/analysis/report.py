"""The report: headings, text, tables and figures, written once as markdown (figures beside it) and once as a
single self-contained HTML file (figures embedded), so it can be read in a repository browser or mailed as is."""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


def fmt(value: object) -> str:
    """Numbers to 4 significant digits, booleans as yes/no, missing as '-'."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def text_table(df: pd.DataFrame) -> str:
    """A fixed-width table for the terminal."""
    cells = [[str(c) for c in df.columns]] + [[fmt(v) for v in row] for row in df.itertuples(index=False)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(df.columns))]
    return "\n".join(
        "  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    )


@dataclass
class Report:
    """Blocks in order; `write` renders both formats into one directory (figures must already be in it)."""

    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def text(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df))

    def figure(self, path: str | os.PathLike[str], caption: str) -> None:
        self.blocks.append(("figure", (Path(path), caption)))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "h2":
                out += [f"## {value}", ""]
            elif kind == "p":
                out += [str(value), ""]
            elif kind == "table":
                df: pd.DataFrame = value  # type: ignore[assignment]
                out.append("| " + " | ".join(map(str, df.columns)) + " |")
                out.append("|" + "---|" * len(df.columns))
                out += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
                out.append("")
            else:
                path, caption = value  # type: ignore[misc]
                out += [f"![{caption}]({path.name})", "", f"*{caption}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "h2":
                body.append(f"<h2>{html.escape(str(value))}</h2>")
            elif kind == "p":
                body.append(f"<p>{html.escape(str(value))}</p>")
            elif kind == "table":
                df = value  # type: ignore[assignment]
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
                rows = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row) + "</tr>"
                    for row in df.itertuples(index=False)
                )
                body.append(f"<table><tr>{head}</tr>{rows}</table>")
            else:
                path, caption = value  # type: ignore[misc]
                data = base64.b64encode(path.read_bytes()).decode()
                body.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;"
            "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
        )
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
        )

    def write(self, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
        """`report.md` and `report.html` in `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, page = out / "report.md", out / "report.html"
        md.write_text(self.markdown())
        page.write_text(self.html())
        return md, page
