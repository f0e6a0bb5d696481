"""XMP packets (images, PDFs): every property they hold, as findings.

XMP is RDF/XML; a packet is parsed without entities, DTDs or network access, and each
property of each ``rdf:Description`` becomes one finding (structures and arrays flattened
into one value).
"""

from __future__ import annotations

from lxml import etree

from .core import Finding, finding

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_SKIP_NS = (RDF, "http://www.w3.org/XML/1998/namespace", "adobe:ns:meta/")
#: XMP properties that say nothing about who, where or with what
_HARMLESS = {"Orientation", "format", "PixelXDimension", "PixelYDimension", "ColorSpace",
             "ImageWidth", "ImageLength", "XResolution", "YResolution", "ResolutionUnit",
             "BitsPerSample", "ColorMode", "PDFVersion"}
MAX_XMP = 4 * 1024 * 1024


def parser() -> etree.XMLParser:
    """An XML parser that expands no entity, loads no DTD and opens no network."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


def _qname(node, name: str) -> str:
    q = etree.QName(name)
    prefix = next((p for p, uri in (node.nsmap or {}).items() if uri == q.namespace), None)
    return f"{prefix}:{q.localname}" if prefix else q.localname


def _texts(el) -> list[str]:
    out = []
    for node in el.iter():
        if not isinstance(node.tag, str):
            continue
        if node.text and node.text.strip():
            out.append(node.text.strip())
        out += [v for k, v in node.attrib.items()
                if not k.startswith(tuple(f"{{{ns}" for ns in _SKIP_NS)) and v.strip()]
    return out


def findings(packet: bytes, where: str = "XMP") -> list[Finding]:
    """One finding per property in an XMP packet.

    :raises etree.XMLSyntaxError: when the packet is not XML
    """
    packet = packet[:MAX_XMP].strip(b"\x00 \r\n\t")
    root = etree.fromstring(packet, parser())
    out = []
    for desc in root.iter(f"{{{RDF}}}Description"):
        if desc.getparent() is None or desc.getparent().tag != f"{{{RDF}}}RDF":
            continue  # a structure's fields: flattened into its property below
        for key, value in desc.attrib.items():
            if key.startswith(tuple(f"{{{ns}" for ns in _SKIP_NS)):
                continue
            if value.strip() and etree.QName(key).localname not in _HARMLESS:
                out.append(finding(f"{where}:{_qname(desc, key)}", value))
        for child in desc:
            if not isinstance(child.tag, str) or etree.QName(child).localname in _HARMLESS:
                continue
            values = _texts(child)
            if values:
                out.append(finding(f"{where}:{_qname(child, child.tag)}", values))
    return out
