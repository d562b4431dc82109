#!/usr/bin/env python3
"""Writes etc/compliance/default.json as a C string (the default profile
built into the binary): embed_profile.py IN.json OUT.c. Fails on bad JSON,
so a broken profile never builds."""
import json
import sys

text = open(sys.argv[1], encoding="utf-8").read()
json.loads(text)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    out.write("/* Generated from %s by embed_profile.py. */\n" % "etc/compliance/default.json")
    out.write("const char cmp_default_profile_json[] =\n")
    for line in text.splitlines():
        out.write("\t%s\n" % json.dumps(line + "\n"))
    out.write(";\n")
