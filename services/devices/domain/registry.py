"""The device registry: which devices may publish, as which Madina entity, decoded how.

Operators keep it in one YAML (or JSON) file (``MADINA_DEVICES_REGISTRY_FILE``; the local city's
is ``services/devices/data/devices.yaml``)::

    decoders:                       # operator-defined decoders, beside the built-in ones
      acme-fill-v2:
        kind: fields                # fixed-offset fields (decoders.FieldLayout)
        fields:
          - {name: fill_pct, offset: 0, type: uint8}
          - {name: temperature, offset: 1, type: int16, scale: 0.1}
    devices:
      - device_id: ber-bin-0001     # direct MQTT topic's device id, or TTS device id
        dev_eui: "70b3d57ed0041234" # LoRaWAN DevEUI (ChirpStack topics carry this)
        domain: waste               # which ingest: a domain and one of its kinds
        kind: container-level
        entity_id: ber-c-0001       # the container, station, lamp, site or vehicle it reports for
        city: berlin                # optional; a direct device must then publish under madina/berlin/
        decoder: acme-fill-v2       # LoRaWAN only: cayenne-lpp, network-server or one of `decoders`
        fields:                     # decoder output -> ingest field; {to, scale, add, as: bool}
          fill_pct: {to: fill_ratio, scale: 0.01}
          temperature: temperature_c

The registry is what a device may publish: an unknown device, a direct message on another
domain or kind than its entry's, or a reading for another entity than its own, is refused (the
gateway dead-letters it). Per-device credentials stay in the MQTT broker's own auth.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from madina.yamlfile import parse_yaml
from services.devices.domain.decoders import BUILT_IN, Decoder, FieldMappingDecoder, field_layouts

_DEV_EUI = re.compile(r"^[0-9a-f]{16}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class RegistryError(ValueError):
    """The registry file is malformed; the message names the entry and field."""


class DeviceRefused(ValueError):
    """The registry does not allow this message (unknown device, wrong topic or entity)."""


@dataclass(frozen=True)
class FieldMap:
    """One decoded value to one ingest field: ``value * scale + add``, or a flag when ``as_bool``."""

    to: str
    scale: float = 1.0
    add: float = 0.0
    as_bool: bool = False

    def apply(self, value: float) -> float | bool:
        return value != 0 if self.as_bool else round(value * self.scale + self.add, 9)


@dataclass(frozen=True)
class DeviceEntry:
    device_id: str
    domain: str
    kind: str
    entity_id: str
    dev_eui: str = ""
    city: str = ""
    decoder: str = ""
    fields: Mapping[str, FieldMap] = field(default_factory=dict)

    def ingest_fields(self, decoded: Mapping[str, float]) -> dict[str, float | bool]:
        """The decoded values the mapping names, as ingest fields (others are dropped)."""
        mapped = {m.to: m.apply(decoded[source]) for source, m in self.fields.items() if source in decoded}
        if not mapped:
            raise DeviceRefused(
                f"device {self.device_id}: the payload carries none of the mapped fields "
                f"({', '.join(self.fields)}); it had {', '.join(sorted(decoded)) or 'nothing'}")
        return mapped


@dataclass(frozen=True)
class DeviceRegistry:
    devices: Mapping[str, DeviceEntry]  # by device id and by DevEUI
    decoders: Mapping[str, Decoder]

    def find(self, *names: str) -> DeviceEntry:
        for name in names:
            if name and (entry := self.devices.get(name)) is not None:
                return entry
        raise DeviceRefused(f"unknown device {' / '.join(n for n in names if n)[:140]!r}: not in the device registry")

    def decoder_of(self, entry: DeviceEntry) -> Decoder:
        return self.decoders[entry.decoder]

    def __len__(self) -> int:
        return len({id(entry) for entry in self.devices.values()})


def load_registry(path: Path, kinds: Mapping[str, Collection[str]]) -> DeviceRegistry:
    """The registry in ``path``; ``kinds`` is what each domain's ingest accepts (domain -> kinds)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise RegistryError(f"{path}: cannot read ({error.strerror})") from None
    try:
        document = json.loads(text) if path.suffix == ".json" else parse_yaml(text)
    except (ValueError, yaml.YAMLError) as error:
        raise RegistryError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {error}") from None
    try:
        return parse_registry(document, kinds)
    except RegistryError as error:
        raise RegistryError(f"{path}: {error}") from None


def parse_registry(document: Any, kinds: Mapping[str, Collection[str]]) -> DeviceRegistry:
    if not isinstance(document, dict):
        raise RegistryError("expected a mapping with 'devices' (and optionally 'decoders')")
    if unknown := sorted(set(document) - {"devices", "decoders"}):
        raise RegistryError(f"{unknown[0]}: unknown key (expected devices, decoders)")
    decoders: dict[str, Decoder] = dict(BUILT_IN)
    for name, spec in (document.get("decoders") or {}).items():
        where = f"decoders.{name}"
        if name in BUILT_IN:
            raise RegistryError(f"{where}: {name} is built in; choose another name")
        if not isinstance(spec, dict) or spec.get("kind") != "fields":
            raise RegistryError(f"{where}.kind: expected 'fields'")
        if unknown := sorted(set(spec) - {"kind", "fields", "description"}):
            raise RegistryError(f"{where}.{unknown[0]}: unknown key")
        try:
            decoders[name] = FieldMappingDecoder(name, field_layouts(spec.get("fields"), f"{where}.fields"))
        except ValueError as error:
            raise RegistryError(str(error)) from None
    devices = document.get("devices")
    if not isinstance(devices, list):
        raise RegistryError("devices: expected a list")
    by_name: dict[str, DeviceEntry] = {}
    for index, item in enumerate(devices):
        entry = _entry(item, f"devices[{index}]", kinds, decoders)
        for name in (entry.device_id, entry.dev_eui):
            if name and name in by_name:
                raise RegistryError(f"devices[{index}]: {name} is already registered")
            if name:
                by_name[name] = entry
    return DeviceRegistry(by_name, decoders)


_ENTRY_KEYS = {"device_id", "dev_eui", "domain", "kind", "entity_id", "city", "decoder", "fields"}


def _entry(item: Any, where: str, kinds: Mapping[str, Collection[str]],
           decoders: Mapping[str, Decoder]) -> DeviceEntry:
    if not isinstance(item, dict):
        raise RegistryError(f"{where}: expected a mapping")
    if unknown := sorted(set(item) - _ENTRY_KEYS):
        raise RegistryError(f"{where}.{unknown[0]}: unknown key (expected one of {', '.join(sorted(_ENTRY_KEYS))})")
    text = {key: item.get(key, "") for key in _ENTRY_KEYS - {"fields"}}
    for key, value in text.items():
        if not isinstance(value, str):
            raise RegistryError(f"{where}.{key}: expected text")
    for key in ("device_id", "entity_id"):
        if not _ID.match(text[key]):
            raise RegistryError(f"{where}.{key}: required, letters, digits and . _ : - (at most 128)")
    dev_eui = text["dev_eui"].lower()
    if dev_eui and not _DEV_EUI.match(dev_eui):
        raise RegistryError(f"{where}.dev_eui: 16 hex digits (an EUI-64)")
    if text["domain"] not in kinds:
        raise RegistryError(f"{where}.domain: {text['domain']!r} is not one of {', '.join(sorted(kinds))}")
    if text["kind"] not in kinds[text["domain"]]:
        raise RegistryError(
            f"{where}.kind: {text['kind']!r} is not one of {', '.join(sorted(kinds[text['domain']]))}")
    if text["decoder"] and text["decoder"] not in decoders:
        raise RegistryError(f"{where}.decoder: {text['decoder']!r} is not one of {', '.join(sorted(decoders))}")
    raw_fields = item.get("fields") or {}
    if not isinstance(raw_fields, dict):
        raise RegistryError(f"{where}.fields: expected a mapping of decoded name -> ingest field")
    if text["decoder"] and not raw_fields:
        raise RegistryError(f"{where}.fields: a device with a decoder needs its field mapping")
    fields = {source: _field_map(spec, f"{where}.fields.{source}") for source, spec in raw_fields.items()}
    return DeviceEntry(device_id=text["device_id"], domain=text["domain"], kind=text["kind"],
                       entity_id=text["entity_id"], dev_eui=dev_eui, city=text["city"], decoder=text["decoder"],
                       fields=fields)


def _field_map(spec: Any, where: str) -> FieldMap:
    if isinstance(spec, str) and spec:
        return FieldMap(spec)
    if not isinstance(spec, dict) or not isinstance(spec.get("to"), str) or not spec["to"]:
        raise RegistryError(f"{where}: an ingest field name, or {{to: NAME, scale, add, as: bool}}")
    if unknown := sorted(set(spec) - {"to", "scale", "add", "as"}):
        raise RegistryError(f"{where}.{unknown[0]}: unknown key (expected to, scale, add, as)")
    for number in ("scale", "add"):
        value = spec.get(number, 1.0 if number == "scale" else 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise RegistryError(f"{where}.{number}: expected a finite number")
    if spec.get("as", "number") not in ("number", "bool"):
        raise RegistryError(f"{where}.as: 'number' or 'bool'")
    return FieldMap(spec["to"], float(spec.get("scale", 1.0)), float(spec.get("add", 0.0)), spec.get("as") == "bool")
