#!/usr/bin/env python3
"""Adds a Content-Security-Policy to the built dist/index.html.

Trunk's loader is an inline module script whose text changes with every build (it names the
hashed wasm/js files), so the policy allows exactly that script by its SHA-256 and nothing else
inline. 'wasm-unsafe-eval' is what WebAssembly compilation needs; nothing in the app uses eval.
"""
import base64, hashlib, re, sys

path = sys.argv[1] if len(sys.argv) > 1 else "dist/index.html"
html = open(path, encoding="utf-8").read()
scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)
if not scripts:
    sys.exit(f"{path}: no inline loader script found")
hashes = " ".join(
    "'sha256-" + base64.b64encode(hashlib.sha256(s.encode("utf-8")).digest()).decode() + "'"
    for s in scripts
)
policy = (
    "default-src 'self'; "
    f"script-src 'self' 'wasm-unsafe-eval' {hashes}; "
    "style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'"
)
meta = f'<meta http-equiv="Content-Security-Policy" content="{policy}" />'
html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>\s*', "", html)
html = html.replace("<head>", "<head>\n  " + meta, 1)
open(path, "w", encoding="utf-8").write(html)
print(f"CSP added to {path} ({len(scripts)} inline script(s) allowed by hash)")
