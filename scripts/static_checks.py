"""Static checks of the addon that need no Odoo: manifest, data files, XML, access CSV, translations."""

import ast
import csv
import re
import sys
from pathlib import Path
from xml.etree import ElementTree

import polib

ADDON = Path(__file__).resolve().parent.parent / "crm_whatsapp_bridge"
REQUIRED_KEYS = ("name", "version", "license", "depends", "data", "installable")
problems = []


def check(condition, message):
    if not condition:
        problems.append(message)


def model_xmlids():
    """``model_<name>`` ids of the models this addon defines (``_name = "..."``)."""
    names = set()
    for path in [*(ADDON / "models").glob("*.py"), *(ADDON / "wizard").glob("*.py")]:
        source = path.read_text()
        inherited = set(re.findall(r'"([\w.]+)"', " ".join(re.findall(r"^\s+_inherit = (.+)$", source, flags=re.M))))
        # ``_name = X`` next to ``_inherit = [..., X]`` extends X rather than defining it.
        names.update(set(re.findall(r'^\s+_name = "([\w.]+)"', source, flags=re.M)) - inherited)
    return {"model_" + name.replace(".", "_") for name in names}


manifest = ast.literal_eval((ADDON / "__manifest__.py").read_text())
for key in REQUIRED_KEYS:
    check(key in manifest, f"manifest lacks {key!r}")
check(re.fullmatch(r"18\.0\.\d+\.\d+\.\d+", manifest.get("version", "")), "version must be 18.0.x.y.z")
check(manifest.get("license") == "LGPL-3", "license must be LGPL-3")
for dependency in ("crm", "mail", "bus", "phone_validation", "utm"):
    check(dependency in manifest.get("depends", []), f"manifest must depend on {dependency}")
for data_file in manifest.get("data", []):
    check((ADDON / data_file).is_file(), f"manifest lists missing file {data_file}")
for bundle in manifest.get("assets", {}).values():
    for asset in bundle:
        check((ADDON.parent / asset).is_file(), f"manifest lists missing asset {asset}")

xml_files = sorted(ADDON.rglob("*.xml"))
for path in xml_files:
    try:
        root = ElementTree.parse(path).getroot()
        check(root.tag == "odoo", f"{path.relative_to(ADDON)}: root element must be <odoo>")
    except ElementTree.ParseError as exc:
        problems.append(f"{path.relative_to(ADDON)}: {exc}")
    if path.relative_to(ADDON).as_posix() not in manifest.get("data", []):
        problems.append(f"{path.relative_to(ADDON)} is not loaded by the manifest")

known_models = model_xmlids()
with open(ADDON / "security" / "ir.model.access.csv", newline="") as handle:
    rows = list(csv.DictReader(handle))
check(rows, "ir.model.access.csv is empty")
for row in rows:
    check(row["model_id:id"] in known_models, f"access rule {row['id']} names unknown model {row['model_id:id']}")
    check(all(row[f"perm_{perm}"] in "01" for perm in ("read", "write", "create", "unlink")),
          f"access rule {row['id']} has a bad permission")
for xmlid in known_models:
    check(any(row["model_id:id"] == xmlid for row in rows), f"{xmlid} has no access rule")

template = ADDON / "i18n" / "crm_whatsapp_bridge.pot"
check(template.is_file(), "i18n/crm_whatsapp_bridge.pot is missing")
for po_path in sorted((ADDON / "i18n").glob("*.po")):
    po = polib.pofile(str(po_path))
    untranslated = [entry.msgid for entry in po.untranslated_entries()]
    check(not untranslated, f"{po_path.name}: {len(untranslated)} untranslated entries, e.g. {untranslated[:3]}")
    for entry in po.translated_entries():
        for placeholder in set(re.findall(r"%\(\w+\)s|%s|%d", entry.msgid)):
            check(placeholder in entry.msgstr, f"{po_path.name}: {entry.msgid!r} loses {placeholder}")
check((ADDON / "i18n" / "ar.po").is_file(), "i18n/ar.po is missing")

for problem in problems:
    print(f"static check: {problem}")
print(f"static checks: {len(xml_files)} XML files, {len(rows)} access rules, "
      f"{len(problems)} problem(s)")
sys.exit(1 if problems else 0)
