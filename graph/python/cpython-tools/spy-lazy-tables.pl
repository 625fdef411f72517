#!/usr/bin/perl
# Big constant tables that only a module most programs never import reads (unicodedata's
# database, the CJK codecs' mappings: 1.7 MB of python3.11) are kept deflated in the binary and
# inflated into zero-filled (.bss) arrays of the same names and sizes on the module's first import,
# so that only the programs that import the module pay for them, once, in time and memory.
# Perl because the build sandbox has no Python before CPython is built; its zlib (Compress::Zlib,
# part of perl) writes what the interpreter's own zlib reads.
#
#   perl spy-lazy-tables.pl hook C_FILE REGEX
#       C_FILE's module init function, matched by REGEX (its opening line up to the brace), starts
#       with SPY_INFLATE_TABLES(), which is 0 unless a tables header included before it says more.
#   perl spy-lazy-tables.pl tables [--defines HEADER] HEADER...
#       Each `static [const] TYPE NAME[N] = {...};` of an integer type, 256 bytes or more, in the
#       HEADERs (in the order the module's source includes them) becomes `static TYPE NAME[N];`;
#       their bytes, deflated, and the function that inflates them follow the last HEADER.
#       --defines names a header whose `#define NAME VALUE` lines give the tables' symbols.
# Every table is checked as it is read (a symbol nobody defined, a value too wide for its type, more
# values than the declared size): a header this does not understand fails the build.
use strict;
use warnings;
use Compress::Zlib ();

my %type_size = (
  'unsigned char' => 1, 'unsigned short' => 2, 'ucs2_t' => 2, 'DBCHAR' => 2,
  'unsigned int' => 4, 'Py_UCS4' => 4, 'ucs4_t' => 4,
);
my $min_bytes = 256;

sub slurp {
  my ($path) = @_;
  open(my $f, '<', $path) or die "spy-lazy-tables: $path: $!\n";
  local $/;
  my $text = <$f>;
  close($f);
  return $text;
}

sub spew {
  my ($path, $text) = @_;
  open(my $f, '>', "$path.spy-tmp") or die "spy-lazy-tables: $path.spy-tmp: $!\n";
  print $f $text or die "spy-lazy-tables: $path: $!\n";
  close($f) or die "spy-lazy-tables: $path: $!\n";
  rename("$path.spy-tmp", $path) or die "spy-lazy-tables: $path: $!\n";
}

my $default = "#ifndef SPY_INFLATE_TABLES\n#define SPY_INFLATE_TABLES() 0\n#endif\n";

sub hook {
  my ($path, $regex) = @_;
  my $text = slurp($path);
  my @found = ($text =~ /($regex)/mg);
  die "spy-lazy-tables: $path: no module init matches /$regex/ (one expected)\n" unless @found == 1;
  # Inside a macro (cjkcodecs.h's I_AM_A_MODULE_FOR) the line continues the macro.
  my $continued = $found[0] =~ /\\\n$/;
  my $call = '    int spy_tables_ready __attribute__((unused)) = SPY_INFLATE_TABLES();'
    . ($continued ? " \\\n" : "\n");
  $text =~ s/($regex)/$1$call/m;
  spew($path, $default . $text);
}

sub value_of {
  my ($token, $defines, $where) = @_;
  my %seen;
  while ($token !~ /^(?:0[xX][0-9a-fA-F]+|[0-9]+)[uU]?$/) {
    die "spy-lazy-tables: $where: `$token` is neither a number nor a defined symbol\n"
      if !exists $defines->{$token} || $seen{$token}++;
    $token = $defines->{$token};
  }
  $token =~ s/[uU]$//;
  return $token =~ /^0[xX]/ ? hex($token) : $token =~ /^0./ ? oct($token) : $token + 0;
}

sub tables {
  my @headers = @_;
  my %defines;
  while (@headers && $headers[0] eq '--defines') {
    shift @headers;
    my $path = shift @headers;
    for my $line (split /\n/, slurp($path)) {
      $defines{$1} = $2 if $line =~ /^#define\s+(\w+)\s+(\w+)\s*(?:\/\*.*)?$/;
    }
  }
  die "spy-lazy-tables: no header given\n" unless @headers;
  my ($raw, $last_text, @parts) = ('', '');
  for my $path (@headers) {
    my $text = slurp($path);
    my $count = 0;
    $text =~ s{^(static\s+(?:const\s+)?(unsigned\s+char|unsigned\s+short|unsigned\s+int|ucs2_t|DBCHAR|Py_UCS4|ucs4_t)\s+(\w+)\s*\[\s*(\w*)\s*\]\s*=\s*\{([^{}]*)\};)}{
      my ($whole, $type, $name, $declared, $body) = ($1, $2, $3, $4, $5);
      $type =~ s/\s+/ /g;
      my $size = $type_size{$type};
      $body =~ s{/\*.*?\*/}{}gs;
      my @tokens = grep { $_ ne '' } map { s/^\s+|\s+$//gr } split(/,/, $body);
      my $n = $declared eq '' ? scalar(@tokens) : value_of($declared, \%defines, "$path: $name\[\]");
      if ($n * $size < $min_bytes) {
        $whole;
      } else {
        die "spy-lazy-tables: $path: $name has ", scalar(@tokens), " values for $n places\n" if @tokens > $n;
        my $max = 2 ** (8 * $size) - 1;
        my $bytes = '';
        for my $token (@tokens) {
          my $v = value_of($token, \%defines, "$path: $name\[\]");
          die "spy-lazy-tables: $path: $name: $token does not fit in $type\n" if $v > $max;
          $bytes .= pack($size == 1 ? 'C' : $size == 2 ? 'v' : 'V', $v);
        }
        $bytes .= "\0" x (($n - @tokens) * $size);
        $raw .= $bytes;
        push @parts, [$name, $type, $size];
        $count++;
        "static $type $name\[$n\]; /* inflated by spy_inflate_tables() (spy-lazy-tables.pl) */";
      }
    }mges;
    die "spy-lazy-tables: $path: no table of $min_bytes bytes or more\n" unless $count;
    # The last header gets the deflated bytes and the function below, after all the arrays.
    if ($path eq $headers[-1]) {
      $last_text = $text;
    } else {
      spew($path, $text);
    }
  }
  my $text = $last_text;
  my $z = Compress::Zlib::compress($raw, 9) // die "spy-lazy-tables: deflate failed\n";
  my @deflated = unpack('C*', $z);
  my $blob = '';
  $blob .= join(',', splice(@deflated, 0, 24)) . ",\n" while @deflated;
  my $checks = join('', map { "_Static_assert(sizeof($_->[0]\[0\]) == $_->[2], \"$_->[0]: $_->[1] is not $_->[2] bytes\");\n" } @parts);
  my $list = join('', map { "    {$_->[0], sizeof($_->[0])},\n" } @parts);
  $text .= <<"C";

/* The tables above, deflated (${\ length($raw)} bytes in ${\ length($z)}): spy-lazy-tables.pl. */
#include <pthread.h>
#include <string.h>
#include <zlib.h>
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "spy-lazy-tables.pl wrote the tables little-endian"
#endif
$checks
static const unsigned char spy_tables_deflated[] = {
$blob};

static const struct { void *to; size_t size; } spy_tables[] = {
$list};

static void
spy_inflate_tables_once(void)
{
    z_stream z;
    unsigned char end;
    size_t i;
    int r = Z_OK;
    memset(&z, 0, sizeof(z));
    if (inflateInit(&z) != Z_OK) {
        Py_FatalError("spy: no memory to inflate the module's tables");
    }
    z.next_in = (Bytef *)spy_tables_deflated;
    z.avail_in = (uInt)sizeof(spy_tables_deflated);
    for (i = 0; i < sizeof(spy_tables) / sizeof(spy_tables[0]); i++) {
        z.next_out = (Bytef *)spy_tables[i].to;
        z.avail_out = (uInt)spy_tables[i].size;
        while (z.avail_out > 0 && r == Z_OK) {
            r = inflate(&z, Z_NO_FLUSH);
        }
        if (z.avail_out > 0) {
            Py_FatalError("spy: cannot inflate the module's tables");
        }
    }
    z.next_out = &end;
    z.avail_out = 1;
    if (inflate(&z, Z_FINISH) != Z_STREAM_END || z.avail_out != 1) {
        Py_FatalError("spy: the module's deflated tables are longer than its tables");
    }
    inflateEnd(&z);
}

/* On the module's first import, in any interpreter: the module's init function calls it. */
static int
spy_inflate_tables(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, spy_inflate_tables_once);
    return 0;
}
#undef SPY_INFLATE_TABLES
#define SPY_INFLATE_TABLES() spy_inflate_tables()
C
  spew($headers[-1], $text);
  printf("spy-lazy-tables: %s: %d tables, %d bytes deflated to %d\n", join(' ', @headers), scalar(@parts), length($raw), length($z));
}

my $command = shift(@ARGV) // '';
if ($command eq 'hook' && @ARGV == 2) {
  hook(@ARGV);
} elsif ($command eq 'tables' && @ARGV) {
  tables(@ARGV);
} else {
  die "usage: spy-lazy-tables.pl hook C_FILE REGEX | tables [--defines HEADER] HEADER...\n";
}
