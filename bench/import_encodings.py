"""How often the encoding found for a CSV file reads it as it was written, for what
Excel writes on Windows: files of German, French and Spanish names in Windows-1252 and
ISO-8859-15, of Polish and Czech names in Windows-1250, of 1 to 500 rows.

Compares ``imports.dialect.sniff_encoding`` (the import's rule) with charset-normalizer's
first guess (``from_bytes(...).best()``). A guess counts as right when it decodes the
file to the text that was written (two code pages that read the file's bytes the same
are both right). Needs no server; run from the project root::

    .venv/bin/python bench/import_encodings.py --trials 20

Prints a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from charset_normalizer import from_bytes

from imports.dialect import sniff_encoding

NAMES = {
    "German": ["Jürgen Müller", "Günther Schäfer", "Björn Köhler", "Ursula Weiß", "Jörg Strauß", "Anna Schmidt",
               "Max Bauer", "Käthe Fröhlich", "Lena Groß", "Sören Hübner"],
    "French": ["Hélène Dubois", "François Lefèvre", "Agnès Mercier", "Jérôme Girard", "Anaïs Bézier", "Noël Faure",
               "Cécile Rousseau", "Benoît Léger", "Gaëlle Pétain", "Thérèse Moreau"],
    "Spanish": ["José García", "María Muñoz", "Iñigo Peña", "Ángel Martínez", "Lucía Gómez", "Raúl Hernández",
                "Begoña Ibáñez", "Óscar Suárez", "Nuria López", "Andrés Núñez"],
    "Polish": ["Łukasz Wójcik", "Małgorzata Kowalczyk", "Paweł Zieliński", "Krzysztof Dąbrowski",
               "Agnieszka Woźniak", "Michał Kozłowski", "Joanna Mazur", "Grzegorz Jankowski", "Zofia Wiśniewska",
               "Bartłomiej Żak"],
    "Czech": ["Jiří Dvořák", "Petr Novák", "Tomáš Černý", "Lucie Procházková", "Jana Kučerová", "Martin Veselý",
              "Pavel Horák", "Zdeněk Němec", "Kateřina Růžičková", "Ondřej Pokorný"],
}  # fmt: skip
ENCODINGS = {
    "German": ["cp1252", "iso8859-15"],
    "French": ["cp1252", "iso8859-15"],
    "Spanish": ["cp1252", "iso8859-15"],
    "Polish": ["cp1250"],
    "Czech": ["cp1250"],
}
ROWS = (1, 2, 3, 5, 10, 50, 500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="files per language, encoding and size")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print("| language | encoding | rows | files | ours right | charset-normalizer right |")
    print("|---|---|---:|---:|---:|---:|")
    totals = [0, 0, 0]
    for language, names in NAMES.items():
        for encoding in ENCODINGS[language]:
            for rows in ROWS:
                ours = theirs = 0
                for _ in range(args.trials):
                    lines = ["email,full_name,company_name"]
                    lines += [f"user{i}@example.com,{rng.choice(names)},ACME GmbH" for i in range(rows)]
                    text = "\r\n".join(lines) + "\r\n"
                    data = text.encode(encoding)
                    found, _reason = sniff_encoding(data, complete=True)
                    ours += data.decode(found, errors="replace") == text
                    best = from_bytes(data).best()
                    theirs += best is not None and data.decode(best.encoding, errors="replace") == text
                totals = [totals[0] + args.trials, totals[1] + ours, totals[2] + theirs]
                print(f"| {language} | {encoding} | {rows} | {args.trials} | {ours} | {theirs} |")
    print(f"| **all** | | | {totals[0]} | **{totals[1]}** | **{totals[2]}** |")


if __name__ == "__main__":
    main()
