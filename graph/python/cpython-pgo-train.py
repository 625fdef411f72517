# The training run of CPython's profile-guided build (cpython3.toml, PY_PGO): what the profile-use
# build optimizes for. The instrumented build-tree interpreter runs it twice: the first run imports
# every stdlib module from source (parser, compiler, marshal.dumps), the second imports them again
# from the cache the first wrote (marshal.loads, module bodies: what start-up and imports do); both
# then run the workload below (the interpreter loop, objects, the C modules users call most).
#
# It must be deterministic, or the profile (hence the binary) would differ between two builds: one
# thread, no subprocess, no clock or random value that decides a branch (fixed seeds), PYTHONHASHSEED
# fixed and address randomization off (the recipe runs it so), so that even identity hashes repeat.
import dataclasses
import math
import os
import string
import _posixsubprocess


def no_child_process(*args, **kwargs):
    raise OSError("the PGO training run starts no process")


# Modules that start programs at import (_ios_support runs gcc and ld through
# ctypes.util.find_library) would make the counts depend on how fast those answer (select's poll
# loop differed between two builds); every caller copes with OSError.
_posixsubprocess.fork_exec = no_child_process
for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv", "execve"):
    if hasattr(os, name):
        setattr(os, name, no_child_process)

# `os` may be frozen; `string` never is.
LIB = os.path.dirname(string.__file__)
# Not imported: GUIs (no _tkinter), the test suite, modules whose import acts (opens a browser,
# prints), directories that hold no stdlib module, and crypt (up to 3.12): its import draws salts
# from os.urandom by rejection sampling, so how often the loop runs (and long_rshift, in
# SystemRandom.getrandbits) changed from build to build, and with it 15 objects' counts.
SKIP_TOP = {"test", "idlelib", "tkinter", "turtledemo", "turtle", "antigravity", "this",
            "__hello__", "__phello__", "site-packages", "lib-dynload", "crypt"}


def stdlib_modules():
    names = []
    for dirpath, dirnames, filenames in os.walk(LIB):
        dirnames.sort()
        rel = os.path.relpath(dirpath, LIB)
        parts = [] if rel == "." else rel.split(os.sep)
        if parts and (parts[0] in SKIP_TOP or "tests" in parts or "test" in parts
                      or not os.path.exists(os.path.join(dirpath, "__init__.py"))):
            dirnames[:] = []
            continue
        for f in sorted(filenames):
            if not f.endswith(".py") or f == "__main__.py" or f.startswith("_sysconfigdata"):
                continue
            mod = f[:-3]
            if not parts and mod in SKIP_TOP:
                continue
            if mod == "__init__":
                if parts:
                    names.append(".".join(parts))
            else:
                names.append(".".join(parts + [mod]))
    return names


def import_all():
    import importlib
    import random
    import warnings
    # What a module draws at import from random's shared instance (seeded from os.urandom) must
    # be the same in every build.
    random.seed(20261203)
    warnings.simplefilter("ignore")
    for name in stdlib_modules():
        try:
            importlib.import_module(name)
        except BaseException:
            pass


@dataclasses.dataclass(order=True)
class Point:  # at module level: the workload pickles points
    x: float
    y: float

    def norm(self):
        return math.hypot(self.x, self.y)


def workload():
    import array, base64, bisect, collections, dataclasses, datetime, decimal, difflib, enum
    import fractions, functools, hashlib, heapq, html.parser, io, itertools, json, math, operator
    import pickle, random, re, statistics, string, struct, textwrap, typing, unicodedata, zlib
    import bz2, lzma, csv, email, email.policy, ipaddress, urllib.parse, sqlite3, pprint
    import xml.etree.ElementTree as ET
    from email.parser import BytesParser

    rng = random.Random(20261203)

    # Objects, calls, classes, generators, exceptions: the interpreter loop.
    class Color(enum.Enum):
        RED = 1
        GREEN = 2
        BLUE = 3

    class Node:
        __slots__ = ("value", "children")

        def __init__(self, value):
            self.value, self.children = value, []

        def walk(self):
            yield self.value
            for c in self.children:
                yield from c.walk()

    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    @functools.lru_cache(maxsize=None)
    def ways(n, k):
        return 1 if n == 0 else 0 if n < 0 or k == 0 else ways(n - k, k) + ways(n, k - 1)

    for round_ in range(3):
        pts = sorted(Point(rng.random(), rng.random()) for _ in range(3000))
        total = sum(p.norm() for p in pts)
        root = Node(0)
        nodes = [root]
        for i in range(1, 3000):
            n = Node(i)
            nodes[rng.randrange(len(nodes))].children.append(n)
            nodes.append(n)
        walked = sum(root.walk())
        fib(20)
        ways.cache_clear()
        ways(60, 30)
        d = {}
        for i in range(20000):
            d[f"k{i % 997}-{i % 13}"] = d.get(f"k{i % 997}-{i % 13}", 0) + i
        s = {i * 7 % 1009 for i in range(20000)}
        lst = [x * x for x in range(20000) if x % 3]
        lst.sort(key=lambda v: -v % 101)
        caught = 0
        for i in range(5000):
            try:
                if i % 3 == 0:
                    raise ValueError(i)
                {}[i]
            except (KeyError, ValueError):
                caught += 1
        names = [c.name for c in Color] * 100
        counter = collections.Counter(names + [str(i % 50) for i in range(5000)])
        dq = collections.deque(range(1000))
        dq.rotate(37)
        od = collections.OrderedDict((str(i), i) for i in range(1000))
        od.move_to_end("5")
        Pair = collections.namedtuple("Pair", "a b")
        pairs = [Pair(i, -i) for i in range(2000)]
        heapq.nsmallest(10, (p.b for p in pairs))
        bisect.insort(lst, 12345)
        list(itertools.islice(itertools.permutations(range(8)), 5000))
        list(itertools.accumulate(range(5000), operator.mul))
        _ = (total, walked, len(d), len(s), caught, counter.most_common(3), od, typing.List[int])

        # Numbers.
        big = 1
        for i in range(1, 600):
            big = big * i + (big >> 3)
        str(big), hex(big), big.bit_length(), pow(3, 4000, 2 ** 521 - 1)
        decimal.getcontext().prec = 50
        x = decimal.Decimal(1)
        for i in range(1, 300):
            x = (x * decimal.Decimal(i) / decimal.Decimal(i + 7)).sqrt() + decimal.Decimal("0.1")
        fr = sum(fractions.Fraction(1, i) for i in range(1, 200))
        floats = [rng.gauss(0, 1) for _ in range(5000)]
        statistics.mean(floats), statistics.stdev(floats), statistics.median(floats)
        [repr(f) for f in floats[:2000]], ["%.3f" % f for f in floats[:2000]]
        [format(f, ".6e") for f in floats[:1000]], [float(str(f)) for f in floats[:2000]]
        _ = (str(x), fr)

        # Text: str methods, formatting, regular expressions, unicode.
        words = ["".join(rng.choice(string.ascii_letters) for _ in range(rng.randrange(2, 12)))
                 for _ in range(4000)]
        text = " ".join(words)
        text.upper().lower().split(), text.replace("a", "b").count("b"), text.encode("utf-8").decode()
        textwrap.fill(text, 72), text.title(), text.center(len(text) + 10, "*").strip("*")
        "\u00e9t\u00e9 \u4e2d\u6587 \U0001f600".encode("utf-16").decode("utf-16")
        [unicodedata.normalize("NFKD", w) for w in ["\u00c5ngstr\u00f6m", "\ufb01ne"] * 100]
        for pat in (r"(\w+)@(\w+)\.com", r"^\s*(\d{1,3}\.){3}\d{1,3}\s*$", r"(?i)[aeiou]{2,}",
                    r"(?P<key>[a-z]+)=(?P<val>[^;]*);?", r"\b(\w)(\w*)\1\b"):
            rx = re.compile(pat)
            rx.findall(text), rx.sub(lambda m: m.group(0)[::-1], text[:20000])
            [rx.match(w) for w in words[:2000]]
        re.split(r"[,;\s]+", text[:30000])
        difflib.SequenceMatcher(None, words[:600], words[100:700]).ratio()
        list(difflib.unified_diff(words[:300], words[10:310], lineterm=""))
        pprint.pformat({w: list(range(5)) for w in words[:200]})
        string.Template("$who likes $what").substitute(who="x", what="y")

        # Data formats.
        doc = {"id": round_, "items": [{"name": w, "n": i, "f": i / 7, "ok": i % 2 == 0, "none": None}
                                       for i, w in enumerate(words[:2000])]}
        js = json.dumps(doc, indent=2, sort_keys=True)
        assert json.loads(js) == doc
        json.loads(json.dumps(doc))
        pk = pickle.dumps(doc, protocol=5)
        pickle.loads(pk), pickle.loads(pickle.dumps(pts[:500]))
        blob = js.encode()
        zlib.decompress(zlib.compress(blob, 6)), bz2.decompress(bz2.compress(blob[:200000]))
        lzma.decompress(lzma.compress(blob[:100000]))
        base64.b64decode(base64.b64encode(blob)), blob.hex()[:100]
        hashlib.sha256(blob).hexdigest(), hashlib.md5(blob).hexdigest(), hashlib.blake2b(blob).digest()
        struct.unpack_from("<16I", struct.pack("<16I", *range(16)))
        array.array("d", floats).tobytes()
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerows([[i, words[i], floats[i]] for i in range(2000)])
        list(csv.reader(io.StringIO(buf.getvalue())))
        root_el = ET.Element("root")
        for i, word in enumerate(words[:1500]):
            ET.SubElement(root_el, "item", name=word, n=str(i)).text = word * 2
        xml_bytes = ET.tostring(root_el)
        len(ET.fromstring(xml_bytes).findall(".//item[@n='7']"))

        class Collect(html.parser.HTMLParser):
            def handle_starttag(self, tag, attrs):
                self.tags = getattr(self, "tags", 0) + 1
        Collect().feed("<html><body>" + "".join(f"<p class='c{i}'>{w}</p>" for i, w in enumerate(words[:1500])) + "</body></html>")
        msg = BytesParser(policy=email.policy.default).parsebytes(
            b"From: a@example.org\r\nTo: b@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text[:5000].encode())
        msg["subject"], msg.get_content()[:10]
        [urllib.parse.urlsplit(f"https://{w}.example/{w}?q={i}#f") for i, w in enumerate(words[:1500])]
        urllib.parse.urlencode({w: i for i, w in enumerate(words[:500])})
        [ipaddress.ip_address(f"10.{i % 256}.{i // 256}.1") for i in range(1500)]
        dt = datetime.datetime(2026, 12, 3, 8, 0, tzinfo=datetime.timezone.utc)
        [(dt + datetime.timedelta(hours=i)).isoformat() for i in range(2000)]
        [datetime.datetime.strptime("2026-12-03 08:15", "%Y-%m-%d %H:%M") for _ in range(300)]
        db = sqlite3.connect(":memory:")
        db.execute("create table t (id integer primary key, w text, f real)")
        db.executemany("insert into t (w, f) values (?, ?)", zip(words, floats))
        db.execute("select count(*), sum(f), max(w) from t where w like 'a%'").fetchall()
        db.close()

        # The compiler, on code made here.
        src = "\n".join(f"def f{i}(a, b=2, *c, **d):\n    return [a + b * x for x in c if x % {i + 2}] or {{'k': d}}"
                        for i in range(300))
        ns = {}
        exec(compile(src, "<pgo>", "exec"), ns)
        [ns[f"f{i}"](1, 2, 3, 4, 5) for i in range(300)]


if __name__ == "__main__":
    import_all()
    workload()
