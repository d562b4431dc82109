#!/usr/bin/env python3
"""Writes a C file holding a text file as a string: embed_text.py IN OUT NAME
defines `const char NAME[]` and `const size_t NAME_len` (its length)."""
import sys


def main():
    src, out, name = sys.argv[1:4]
    with open(src, "rb") as f:
        data = f.read()
    lines = ["/* Generated from %s by scripts/embed_text.py: do not edit. */" % src.split("/")[-1],
             "#include <stddef.h>", "", "const char %s[] =" % name]
    for i in range(0, len(data), 64):
        chunk = data[i:i + 64]
        lines.append('\t"' + "".join("\\x%02x" % b for b in chunk) + '"')
    if not data:
        lines.append('\t""')
    lines[-1] += ";"
    lines.append("const size_t %s_len = sizeof %s - 1;" % (name, name))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
