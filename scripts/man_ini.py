#!/usr/bin/env python3
"""grace.ini(5) in roff, made from etc/grace.ini: its sections, its keys with
their defaults and the comments beside them, and its comment paragraphs.
The configuration file is the one source, so the page cannot drift from it.

    scripts/man_ini.py etc/grace.ini VERSION > grace.ini.5
"""
import re
import sys


def roff(text):
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text)


def main():
    path, version = sys.argv[1], sys.argv[2]
    out = [".\\\" grace.ini(5), made by scripts/man_ini.py from etc/grace.ini",
           '.TH GRACE.INI 5 "" "grace %s" "File Formats"' % version,
           ".SH NAME", "grace.ini \\- the configuration of Grace",
           ".SH SYNOPSIS", ".I /etc/grace/grace.ini",
           ".SH DESCRIPTION",
           "An INI file: [sections] of key = value lines; ';' starts a comment. "
           "\\fBgrace serve\\fR, \\fBgrace kernel\\fR and the other commands read it "
           "(\\-\\-config FILE, else $GRACE_CONFIG, else etc/grace.ini). Every value below "
           "is the default. GRACE_CONFIG, GRACE_DATA_DIR and GRACE_PORT_OFFSET (and "
           "\\-\\-config, \\-\\-data\\-dir, \\-\\-port\\-offset) override the file."]
    para = []

    def flush():
        if para:
            out.append(".PP")
            out.append(roff(" ".join(para)))
            para.clear()

    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    started = False
    for line in lines:
        s = line.strip()
        m = re.match(r"^\[([^\]]+)\]$", s)
        if m:
            flush()
            started = True
            out.append(".SH \"[%s]\"" % m.group(1))
            continue
        if not started:
            continue
        if not s:
            flush()
            continue
        if s.startswith(";"):
            body = s[1:].strip()
            km = re.match(r"^([a-z_]+) = (.*)$", body)
            if km:  # a commented-out example key
                flush()
                out.append(".TP\n.B %s\n(unset; for example \\fI%s\\fR)" %
                           (roff(km.group(1)), roff(km.group(2))))
            elif body:
                para.append(body)
            else:
                flush()
            continue
        km = re.match(r"^([a-z_.]+)\s*=\s*([^;]*?)\s*(?:;\s*(.*))?$", s)
        if km:
            flush()
            key, value, note = km.group(1), km.group(2), km.group(3)
            out.append(".TP\n.B %s\ndefault \\fI%s\\fR%s" % (
                roff(key), roff(value) or "(empty)", (": " + roff(note)) if note else ""))
    flush()
    out += [".SH FILES", ".TP", ".I /etc/grace/grace.ini", "the packaged configuration.",
            ".SH \"SEE ALSO\"", "\\fBgrace\\fR(1)"]
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
