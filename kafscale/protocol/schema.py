"""Compile Apache Kafka's JSON message schemas into fast readers and writers.

The schemas are the ones Apache Kafka generates its own protocol classes
from; kafka-python ships them, so they are read from the installed
distribution and never copied here.  They are located through
importlib.metadata rather than importlib.resources because the latter
imports the ``kafka`` package, whose client modules cost ~150 ms of import
time that a broker never needs.  For each message version the compiler writes the
source of one reader and one writer function (plus one per nested struct),
with every run of fixed-width fields folded into a single precompiled
``struct.Struct``, and hands the source to ``compile``.  ``records`` fields
decode as zero-copy memoryview slices of the frame.

Messages are plain dicts keyed by the snake_case of the schema's field
names.  Writers append ``bytes``-like parts to a list, so a frame is joined
(copied) exactly once, records included.
"""

import functools
import importlib.metadata
import json
import re
import struct
import uuid

SCHEMA_DISTRIBUTION = "kafka-python"
SCHEMA_DIRECTORY = "kafka/protocol/schemas/resources"
# The schema set changes with kafka-python's minor version; the codec and its
# oracle tests were checked against this one.
SCHEMA_DISTRIBUTION_VERSION = "3.0."


class DecodeError(ValueError):
    """The bytes are not a valid encoding of the message."""


class TooManyElements(DecodeError):
    """The message's arrays hold more elements in all than allowed."""


# ---------------------------------------------------------------------------
# Loading the schemas


_COMMENT_OR_STRING = re.compile(r'("(?:\\.|[^"\\])*")|//[^\n]*')


def strip_comments(text):
    return _COMMENT_OR_STRING.sub(lambda m: m.group(1) or "", text)


def load_schema_texts():
    """Yield the parsed JSON of every schema file in kafka-python's package."""
    distribution = importlib.metadata.distribution(SCHEMA_DISTRIBUTION)
    if not distribution.version.startswith(SCHEMA_DISTRIBUTION_VERSION):
        raise ImportError(
            f"{SCHEMA_DISTRIBUTION} {distribution.version} installed, "
            f"the Kafka schemas are pinned to {SCHEMA_DISTRIBUTION_VERSION}x"
        )
    directory = distribution.locate_file(SCHEMA_DIRECTORY)
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            yield json.loads(strip_comments(entry.read_text(encoding="utf-8")))


_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name):
    """``TopicId`` -> ``topic_id``, ``ISRNodes`` -> ``isr_nodes``."""
    return _WORD_BOUNDARY.sub("_", name).lower()


class Versions:
    """A schema version range: ``"3+"``, ``"0-5"``, ``"2"`` or ``"none"``."""

    __slots__ = ("low", "high")

    def __init__(self, text):
        text = str(text).strip()
        if text == "none":
            self.low, self.high = 0, -1
        elif text.endswith("+"):
            self.low, self.high = int(text[:-1]), 1 << 15
        elif "-" in text:
            low, high = text.split("-")
            self.low, self.high = int(low), int(high)
        else:
            self.low = self.high = int(text)

    def __contains__(self, version):
        return self.low <= version <= self.high

    def __repr__(self):
        return f"Versions({self.low}, {self.high})"


_NONE = Versions("none")


class Field:
    """One field of a schema, with its nested fields when it is a struct."""

    def __init__(self, spec, structs):
        self.name = spec["name"]
        self.key = snake_case(self.name)
        self.type = spec["type"]
        self.versions = Versions(spec.get("versions", "0+"))
        self.nullable = Versions(spec.get("nullableVersions", "none"))
        self.tag = spec.get("tag")
        self.tagged = Versions(spec["taggedVersions"]) if "taggedVersions" in spec else _NONE
        # Only the request header's ClientId uses this: non-compact even in flexible versions.
        self.flexible = Versions(spec["flexibleVersions"]) if "flexibleVersions" in spec else None
        self.default = spec.get("default")
        self.element = self.type[2:] if self.type.startswith("[]") else None
        struct_name = self.element or self.type
        if "fields" in spec:
            self.fields = [Field(f, structs) for f in spec["fields"]]
            structs[struct_name] = self.fields
        elif struct_name in structs:
            self.fields = structs[struct_name]
        else:
            self.fields = None

    @property
    def is_struct(self):
        return self.fields is not None

    def is_tagged(self, version):
        return self.tag is not None and version in self.tagged

    @property
    def null_default(self):
        return isinstance(self.default, str) and self.default.strip().lower() == "null"

    def default_value(self, version):
        """The value this field takes when a message leaves it out, at ``version``."""
        if self.element is not None:
            return None if self.null_default else []
        if self.is_struct:
            if self.null_default:
                return None
            return {f.key: f.default_value(version) for f in self.fields if version in f.versions}
        return _scalar_default(self.type, self.default, version in self.nullable)


class Message:
    """One schema file: a request, a response, a header or a data struct."""

    def __init__(self, spec):
        self.name = spec["name"]
        self.kind = spec["type"]
        self.api_key = spec.get("apiKey")
        self.valid_versions = Versions(spec["validVersions"])
        self.flexible_versions = Versions(spec["flexibleVersions"])
        structs = {}
        # Common structs are resolved by name; register their shells first so
        # fields referring to them (even before their definition) find them.
        for common in spec.get("commonStructs", ()):
            structs[common["name"]] = []
        for common in spec.get("commonStructs", ()):
            structs[common["name"]][:] = [Field(f, structs) for f in common["fields"]]
        self.fields = [Field(f, structs) for f in spec["fields"]]

    def versions(self):
        return range(self.valid_versions.low, self.valid_versions.high + 1)


def load_messages():
    """Every schema shipped with kafka-python, as :class:`Message` objects."""
    return [Message(spec) for spec in load_schema_texts()]


# ---------------------------------------------------------------------------
# Primitive encodings shared by the generated code


_FIXED_FORMATS = {
    "bool": "?",
    "int8": "b",
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "int64": "q",
    "float64": "d",
    "uuid": "16s",
}
_FIXED_SIZES = {t: struct.calcsize(">" + f) for t, f in _FIXED_FORMATS.items()}

_ZERO_UUID = uuid.UUID(int=0)
_SMALL_UVARINTS = [bytes([n]) for n in range(128)]
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


def read_uvarint(buf, pos):
    """Read an unsigned varint (at most 5 bytes); return (value, new position)."""
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise DecodeError("unsigned varint longer than 5 bytes")


def uvarint(value):
    """Encode an unsigned varint."""
    if value < 0x80:
        return _SMALL_UVARINTS[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _uuid_bytes(value):
    return value.bytes if value is not None else bytes(16)


class FixedArray:
    """Packs and unpacks arrays of one fixed-width type, count prefix included
    when packing, with a precompiled ``struct.Struct`` per (small) length."""

    _CACHED_LENGTHS = 64

    def __init__(self, code, compact):
        self.code = code
        self.compact = compact
        prefix = "B" if compact else "i"
        self.packers = [struct.Struct(f">{prefix}{n}{code}") for n in range(self._CACHED_LENGTHS)]
        self.unpackers = [struct.Struct(f">{n}{code}") for n in range(self._CACHED_LENGTHS)]

    def pack(self, values):
        n = len(values)
        if n < self._CACHED_LENGTHS:
            return self.packers[n].pack(n + 1 if self.compact else n, *values)
        count = uvarint(n + 1) if self.compact else _INT32.pack(n)
        return count + struct.pack(f">{n}{self.code}", *values)

    def unpack(self, buf, pos, n):
        if n < self._CACHED_LENGTHS:
            return list(self.unpackers[n].unpack_from(buf, pos))
        return list(struct.unpack_from(f">{n}{self.code}", buf, pos))


@functools.cache
def fixed_array(code, compact):
    """The shared :class:`FixedArray` of a struct format code."""
    return FixedArray(code, compact)


def _skip_tagged(buf, pos):
    """Skip a tagged-field section whose fields are all unknown."""
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
    return pos


_RUNTIME = {
    "DecodeError": DecodeError,
    "TooManyElements": TooManyElements,
    "UUID": uuid.UUID,
    "read_uvarint": read_uvarint,
    "uvarint": uvarint,
    "SMALL_UVARINTS": _SMALL_UVARINTS,
    "uuid_bytes": _uuid_bytes,
    "skip_tagged": _skip_tagged,
    "INT16": _INT16,
    "INT32": _INT32,
}


# ---------------------------------------------------------------------------
# Defaults


def _scalar_default(type_, default, nullable):
    """The Python value of a non-struct, non-array field's default."""
    if default is None:
        default = ""
    if isinstance(default, str) and default.strip().lower() == "null":
        if not nullable:
            raise ValueError(f"null default for a non-nullable {type_}")
        return None
    if type_ in ("int8", "int16", "uint16", "int32", "int64"):
        return int(default, 0) if isinstance(default, str) and default else int(default or 0)
    if type_ == "float64":
        return float(default or 0)
    if type_ == "bool":
        return default is True or str(default).lower() == "true"
    if type_ == "string":
        return default
    if type_ == "uuid":
        return _ZERO_UUID if not default else uuid.UUID(default)
    if type_ == "bytes":
        return b""
    if type_ == "records":
        return None
    raise ValueError(f"unknown type {type_}")


# ---------------------------------------------------------------------------
# Code generation


class _Source:
    """Accumulates the generated source and the constants it refers to."""

    def __init__(self):
        self.lines = []
        self.namespace = dict(_RUNTIME)
        # (constant name, nested struct functions) of tagged struct fields' default encodings
        self.struct_defaults = []
        self._counter = 0

    def name(self, prefix):
        self._counter += 1
        return f"{prefix}{self._counter}"

    def constant(self, value, prefix="C"):
        name = self.name(prefix)
        self.namespace[name] = value
        return name

    def struct(self, fmt):
        return self.constant(struct.Struct(">" + fmt), "S")

    def emit(self, indent, line):
        self.lines.append("    " * indent + line)


class _StructCompiler:
    """Generates the reader, writer and default maker of one struct at one version."""

    def __init__(self, source, fields, version, flexible, cache):
        self.src = source
        self.version = version
        self.flexible = flexible
        self.fields = [f for f in fields if version in f.versions]
        self.cache = cache

    # -- helpers about one field at this version --

    def nullable(self, field):
        return self.version in field.nullable

    def compact(self, field):
        return self.flexible and (field.flexible is None or self.version in field.flexible)

    def nested(self, field):
        """(reader, writer, default maker) names of a struct field's struct."""
        key = id(field.fields)
        if key not in self.cache:
            compiler = _StructCompiler(self.src, field.fields, self.version, self.flexible, self.cache)
            self.cache[key] = compiler.compile()
        return self.cache[key]

    def default_expr(self, field, for_decode):
        """Source of an expression giving the field's default value."""
        if field.element is not None:
            if field.null_default:
                return "None"
            return "[]" if for_decode else "()"
        if field.is_struct:
            if field.null_default:
                return "None"
            return f"{self.nested(field)[2]}()"
        value = field.default_value(self.version)
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            return repr(value)
        return self.src.constant(value, "D")

    # -- reading --

    def read_length(self, indent, compact, width):
        """Emit code setting ``n`` to a length, -1 meaning null."""
        emit = self.src.emit
        if compact:
            emit(indent, "n = buf[pos]")
            emit(indent, "if n < 128:")
            emit(indent + 1, "pos += 1")
            emit(indent, "else:")
            emit(indent + 1, "n, pos = read_uvarint(buf, pos)")
            emit(indent, "n -= 1")
        else:
            emit(indent, f"n, = {'INT16' if width == 2 else 'INT32'}.unpack_from(buf, pos)")
            emit(indent, f"pos += {width}")

    def read_null_check(self, field, var, indent, nullable):
        emit = self.src.emit
        emit(indent, "if n < 0:")
        if nullable:
            emit(indent + 1, f"{var} = None")
        else:
            emit(indent + 1, f"raise DecodeError('null {field.name}')")
        emit(indent, "else:")

    def read_value(self, field, type_, var, indent, nullable):
        """Emit code reading one value of ``type_`` at ``pos`` into ``var``."""
        emit = self.src.emit
        if type_ in _FIXED_FORMATS:
            name = self.src.struct(_FIXED_FORMATS[type_])
            emit(indent, f"{var}, = {name}.unpack_from(buf, pos)")
            emit(indent, f"pos += {_FIXED_SIZES[type_]}")
            if type_ == "uuid":
                emit(indent, f"{var} = UUID(bytes={var})")
        elif type_ == "string":
            self.read_length(indent, self.compact(field), 2)
            self.read_null_check(field, var, indent, nullable)
            emit(indent + 1, "end = pos + n")
            emit(indent + 1, f"{var} = str(buf[pos:end], 'utf-8')")
            emit(indent + 1, "pos = end")
        elif type_ in ("bytes", "records"):
            self.read_length(indent, self.compact(field), 4)
            self.read_null_check(field, var, indent, nullable)
            emit(indent + 1, "end = pos + n")
            if type_ == "bytes":
                emit(indent + 1, f"{var} = bytes(buf[pos:end])")
            else:
                emit(indent + 1, f"{var} = buf[pos:end]")
            emit(indent + 1, "pos = end")
        elif type_.startswith("[]"):
            self.read_array(field, var, indent, nullable)
        elif field.is_struct:
            reader = self.nested(field)[0]
            if nullable:
                emit(indent, "if buf[pos] >= 128:")  # int8 -1 marks a null struct
                emit(indent + 1, f"{var} = None")
                emit(indent + 1, "pos += 1")
                emit(indent, "else:")
                emit(indent + 1, f"{var}, pos = {reader}(buf, pos + 1, budget)")
            else:
                emit(indent, f"{var}, pos = {reader}(buf, pos, budget)")
        else:
            raise ValueError(f"unknown type {type_} of {field.name}")

    def read_array(self, field, var, indent, nullable):
        emit = self.src.emit
        self.read_length(indent, self.compact(field), 4)
        self.read_null_check(field, var, indent, nullable)
        inner = indent + 1
        emit(inner, "if n > len(buf) - pos:")
        emit(inner + 1, f"raise DecodeError('{field.name}: array longer than the buffer')")
        emit(inner, "budget[0] -= n")
        emit(inner, "if budget[0] < 0:")
        emit(inner + 1, f"raise TooManyElements('{field.name}: more array elements than a request may hold')")
        element = field.element
        if element in _FIXED_FORMATS and element != "uuid":
            array = self.src.constant(fixed_array(_FIXED_FORMATS[element], self.compact(field)), "A")
            emit(inner, f"{var} = {array}.unpack(buf, pos, n)")
            emit(inner, f"pos += {_FIXED_SIZES[element]} * n")
        elif field.is_struct:
            reader = self.nested(field)[0]
            emit(inner, f"{var} = []")
            emit(inner, f"append = {var}.append")
            emit(inner, "for _ in range(n):")
            emit(inner + 1, f"item, pos = {reader}(buf, pos, budget)")
            emit(inner + 1, "append(item)")
        else:
            emit(inner, f"{var} = []")
            emit(inner, "for _ in range(n):")
            self.read_value(field, element, "item", inner + 1, nullable=False)
            emit(inner + 1, f"{var}.append(item)")

    def compile_reader(self, name):
        emit = self.src.emit
        emit(0, f"def {name}(buf, pos, budget):")
        names = {id(f): f"f{i}" for i, f in enumerate(self.fields)}
        run = []

        def flush_run():
            if not run:
                return
            fmt = "".join(_FIXED_FORMATS[f.type] for f in run)
            s = self.src.struct(fmt)
            targets = "".join(f"{names[id(f)]}, " for f in run)
            emit(1, f"{targets}= {s}.unpack_from(buf, pos)")
            emit(1, f"pos += {struct.calcsize('>' + fmt)}")
            for f in run:
                if f.type == "uuid":
                    emit(1, f"{names[id(f)]} = UUID(bytes={names[id(f)]})")
            run.clear()

        tagged = []
        for field in self.fields:
            if field.is_tagged(self.version):
                tagged.append(field)
            elif field.type in _FIXED_FORMATS:
                run.append(field)
            else:
                flush_run()
                self.read_value(field, field.type, names[id(field)], 1, self.nullable(field))
        flush_run()
        if self.flexible:
            if tagged:
                for field in tagged:
                    emit(1, f"{names[id(field)]} = {self.default_expr(field, for_decode=True)}")
                emit(1, "count, pos = read_uvarint(buf, pos)")
                emit(1, "for _ in range(count):")
                emit(2, "tag, pos = read_uvarint(buf, pos)")
                emit(2, "size, pos = read_uvarint(buf, pos)")
                emit(2, "tag_end = pos + size")
                for i, field in enumerate(sorted(tagged, key=lambda f: f.tag)):
                    emit(2, f"{'if' if i == 0 else 'elif'} tag == {field.tag}:")
                    self.read_value(field, field.type, names[id(field)], 3, self.nullable(field))
                emit(2, "if pos > tag_end:")
                emit(3, "raise DecodeError('tagged field longer than its size')")
                emit(2, "pos = tag_end")
            else:
                emit(1, "if buf[pos]:")
                emit(2, "pos = skip_tagged(buf, pos)")
                emit(1, "else:")
                emit(2, "pos += 1")
        items = ", ".join(f"{f.key!r}: {names[id(f)]}" for f in self.fields)
        emit(1, f"return {{{items}}}, pos")
        emit(0, "")

    # -- writing --

    def write_value(self, field, type_, expr, indent, nullable, out="out"):
        """Emit code appending the encoding of ``expr`` (a local name) to ``out``."""
        emit = self.src.emit
        compact = self.compact(field)
        if type_ in _FIXED_FORMATS:
            name = self.src.struct(_FIXED_FORMATS[type_])
            value = f"uuid_bytes({expr})" if type_ == "uuid" else expr
            emit(indent, f"{out}.append({name}.pack({value}))")
            return
        null = None
        if type_ in ("string", "bytes", "records") or type_.startswith("[]"):
            null = "SMALL_UVARINTS[0]" if compact else (
                repr(b"\xff\xff") if type_ == "string" else repr(b"\xff\xff\xff\xff"))
        elif field.is_struct:
            null = repr(b"\xff")
        if nullable:
            emit(indent, f"if {expr} is None:")
            emit(indent + 1, f"{out}.append({null})")
            emit(indent, "else:")
            indent += 1
        length_width = 2 if type_ == "string" else 4

        def write_length(length):
            if compact:
                emit(indent, f"n = {length} + 1")
                emit(indent, f"{out}.append(SMALL_UVARINTS[n] if n < 128 else uvarint(n))")
            else:
                emit(indent, f"{out}.append({'INT16' if length_width == 2 else 'INT32'}.pack({length}))")

        if type_ == "string":
            emit(indent, f"data = {expr}.encode('utf-8')")
            write_length("len(data)")
            emit(indent, f"{out}.append(data)")
        elif type_ in ("bytes", "records"):
            write_length(f"({expr}.nbytes if type({expr}) is memoryview else len({expr}))")
            emit(indent, f"{out}.append({expr})")
        elif type_.startswith("[]"):
            element = field.element
            if element in _FIXED_FORMATS and element != "uuid":
                array = self.src.constant(fixed_array(_FIXED_FORMATS[element], compact), "A")
                emit(indent, f"{out}.append({array}.pack({expr}))")
                return
            write_length(f"len({expr})")
            if field.is_struct:
                writer = self.nested(field)[1]
                emit(indent, f"for item in {expr}:")
                emit(indent + 1, f"{writer}(item, {out})")
            else:
                emit(indent, f"for item in {expr}:")
                self.write_value(field, element, "item", indent + 1, nullable=False, out=out)
        elif field.is_struct:
            writer = self.nested(field)[1]
            if nullable:
                emit(indent, f"{out}.append(b'\\x01')")
            emit(indent, f"{writer}({expr}, {out})")
        else:
            raise ValueError(f"unknown type {type_} of {field.name}")

    def compile_writer(self, name):
        emit = self.src.emit
        emit(0, f"def {name}(m, out):")
        emit(1, "get = m.get")
        run = []

        def flush_run():
            if not run:
                return
            s = self.src.struct("".join(_FIXED_FORMATS[f.type] for f in run))
            values = []
            for f in run:
                value = f"get({f.key!r}, {self.default_expr(f, for_decode=False)})"
                values.append(f"uuid_bytes({value})" if f.type == "uuid" else value)
            emit(1, f"out.append({s}.pack({', '.join(values)}))")
            run.clear()

        tagged = []
        for field in self.fields:
            if field.is_tagged(self.version):
                tagged.append(field)
            elif field.type in _FIXED_FORMATS:
                run.append(field)
            else:
                flush_run()
                emit(1, f"v = get({field.key!r}, {self.default_expr(field, for_decode=False)})")
                self.write_value(field, field.type, "v", 1, self.nullable(field))
        flush_run()
        if self.flexible:
            if not tagged:
                emit(1, "out.append(SMALL_UVARINTS[0])")
            else:
                emit(1, "tags = []")
                for field in sorted(tagged, key=lambda f: f.tag):
                    self.write_tagged(field)
                emit(1, "out.append(uvarint(len(tags) // 3))")
                emit(1, "out.extend(tags)")
        emit(0, "")

    def write_tagged(self, field):
        """Emit code writing a tagged field unless it equals its default."""
        emit = self.src.emit
        default = self.default_expr(field, for_decode=False)
        struct_with_default = field.is_struct and field.element is None and not field.null_default
        if struct_with_default or field.null_default:
            emit(1, f"v = get({field.key!r})")  # absent means default
            emit(1, "if v is not None:")
        elif field.element is not None:
            emit(1, f"v = get({field.key!r})")
            emit(1, "if v:")
        else:
            emit(1, f"v = get({field.key!r}, {default})")
            emit(1, f"if v != {default}:")
        part = self.src.name("p")
        emit(2, f"{part} = []")
        self.write_value(field, field.type, "v", 2, self.nullable(field), out=part)
        emit(2, f"data = b''.join({part})")
        append = f"tags += ({uvarint(field.tag)!r}, uvarint(len(data)), data)"
        if struct_with_default:
            # A struct is at its default when it encodes like the default struct.
            encoded_default = self.src.constant(None, "E")
            self.src.struct_defaults.append((encoded_default, self.nested(field)))
            emit(2, f"if data != {encoded_default}:")
            emit(3, append)
        else:
            emit(2, append)

    def compile_default(self, name):
        emit = self.src.emit
        items = ", ".join(f"{f.key!r}: {self.default_expr(f, for_decode=True)}" for f in self.fields)
        emit(0, f"def {name}():")
        emit(1, f"return {{{items}}}")
        emit(0, "")

    def compile(self):
        # Nested structs first, so that their functions are not emitted in
        # the middle of this struct's.
        for field in self.fields:
            if field.is_struct:
                self.nested(field)
        names = self.src.name("read"), self.src.name("write"), self.src.name("default")
        self.compile_reader(names[0])
        self.compile_writer(names[1])
        self.compile_default(names[2])
        return names


def compile_message(message, version):
    """Compile one message version; return (reader, writer, default maker).

    ``reader(buf, pos, budget) -> (dict, pos)`` reads from a memoryview,
    taking each array's elements from ``budget[0]``; ``writer(m,
    out)`` appends the encoding of ``m`` to the list ``out``; the default
    maker returns a dict holding every field's default.
    """
    if version not in message.valid_versions:
        raise ValueError(f"{message.name} has no version {version}")
    source = _Source()
    cache = {}
    flexible = version in message.flexible_versions
    compiler = _StructCompiler(source, message.fields, version, flexible, cache)
    reader, writer, default = compiler.compile()
    code = compile("\n".join(source.lines), f"<{message.name} v{version}>", "exec")
    namespace = source.namespace
    exec(code, namespace)
    # Tagged struct fields are compared with their default's encoding, which
    # is known only once the struct writers exist.
    for constant, (_, struct_writer, struct_default) in source.struct_defaults:
        parts = []
        namespace[struct_writer](namespace[struct_default](), parts)
        namespace[constant] = b"".join(parts)
    return namespace[reader], namespace[writer], namespace[default]
