#!/usr/bin/env python3
"""Checks an HTML report with a real parser (Python's html.parser), for the
tests of `--format html`.

    html_check.py page FILE   the page: every element closed in order, and
                              nothing that could make a request or run code
    html_check.py index FILE  the same, but links (`<a href>`) to files
                              beside it are allowed: printed as "links"
    html_check.py png FILE    a PNG screenshot: its size, how many colours,
                              and how many pixels of each colour given as
                              further arguments (rrggbb)

Prints one JSON object; exits 1 with the problems listed when a page fails.
"""

import json
import struct
import sys
import zlib
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Elements that fetch or run something by themselves.
ACTIVE = {"script", "link", "iframe", "frame", "object", "embed", "img", "image", "base", "audio", "video",
          "source", "use", "foreignobject", "form", "input", "feimage"}
URL_ATTRS = {"src", "href", "xlink:href", "action", "srcset", "poster", "data", "formaction", "background"}


class Checker(HTMLParser):
    def __init__(self, local_links=False):
        super().__init__(convert_charrefs=True)
        self.local_links = local_links
        self.links = []
        self.stack = []
        self.problems = []
        self.counts = {}
        self.text = []
        self.in_style = False

    def where(self):
        line, col = self.getpos()
        return f"{line}:{col}"

    def attrs_ok(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag in ACTIVE:
            self.problems.append(f"{self.where()}: <{tag}> would fetch or run something")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append(f"{self.where()}: event handler {name}= on <{tag}>")
            if self.local_links and tag == "a" and name == "href" and ":" not in value and not value.startswith("/"):
                self.links.append(value)
            elif name in URL_ATTRS and not value.startswith("#"):
                self.problems.append(f"{self.where()}: {name}={value!r} on <{tag}> points outside the page")
            if "url(" in value.replace("url(#", ""):
                self.problems.append(f"{self.where()}: url() outside the page in {name}= on <{tag}>")

    def handle_starttag(self, tag, attrs):
        self.attrs_ok(tag, attrs)
        if tag == "style":
            self.in_style = True
        if tag not in VOID:
            self.stack.append((tag, self.where()))

    def handle_startendtag(self, tag, attrs):
        self.attrs_ok(tag, attrs)

    def handle_endtag(self, tag):
        if tag == "style":
            self.in_style = False
        if not self.stack:
            self.problems.append(f"{self.where()}: </{tag}> closes nothing")
        elif self.stack[-1][0] != tag:
            open_tag, at = self.stack[-1]
            self.problems.append(f"{self.where()}: </{tag}> closes <{open_tag}> opened at {at}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self.in_style:
            if "url(" in data or "@import" in data:
                self.problems.append(f"{self.where()}: the style sheet fetches something")
        else:
            self.text.append(data)


def page(path, local_links=False):
    with open(path, encoding="utf-8") as f:
        source = f.read()
    checker = Checker(local_links)
    checker.feed(source)
    checker.close()
    for tag, at in checker.stack:
        checker.problems.append(f"<{tag}> opened at {at} is never closed")
    if not source.startswith("<!DOCTYPE html>"):
        checker.problems.append("no <!DOCTYPE html> first")
    result = {"problems": checker.problems, "counts": checker.counts, "text": "".join(checker.text),
              "links": checker.links}
    print(json.dumps(result))
    return 1 if checker.problems else 0


def png(path, wanted):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path} is not a PNG")
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None:
        raise SystemExit(f"{path}: PNG colour type {colour} depth {depth} not handled")
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    counts = {}
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        for x in range(0, stride, channels):
            rgb = bytes(line[x:x + 3]).hex()
            counts[rgb] = counts.get(rgb, 0) + 1
        previous = line
    print(json.dumps({"width": width, "height": height, "colours": len(counts),
                      "pixels": {w: counts.get(w, 0) for w in wanted}}))
    return 0


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "png":
        sys.exit(png(path, sys.argv[3:]))
    sys.exit(page(path, local_links=(mode == "index")))
