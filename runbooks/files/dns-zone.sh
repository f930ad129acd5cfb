#!/bin/sh
# dns-zone.sh: read and rewrite the SOA serial of a zone file in RFC 1035 master
# format (BIND, NSD, Knot). Uploaded to the DNS server by the dns-failover and
# dns-failback runbooks; needs only a POSIX shell, awk, cp and date.
#
#   dns-zone.sh serial FILE           print the SOA serial of FILE
#   dns-zone.sh next SERIAL           print the next serial: YYYYMMDD00 of today (UTC)
#                                     if that is greater than SERIAL, else SERIAL + 1
#   dns-zone.sh same FILE1 FILE2      exit 0 if the files are identical but for the serial
#   dns-zone.sh stage SRC DEST [MIN]  write DEST.drp-new with SRC's records, DEST's owner
#                                     and mode, and the serial next(max(serial DEST, MIN));
#                                     print "serial OLD -> NEW"
#
# The serial is the third field after the SOA type (MNAME, RNAME, SERIAL), found
# across parentheses, line breaks and ';' comments. Only that token is rewritten;
# every other byte of the file is kept. DRP_DNS_TODAY=YYYYMMDD overrides the date
# (tests). Exit codes: 0 ok, 1 "not the same" (same), 2 error.
set -eu

die() {
	echo "dns-zone.sh: $*" >&2
	exit 2
}

# soa MODE REPLACEMENT < zone: MODE "print" prints the serial; "rewrite" prints the
# file with the serial token replaced by REPLACEMENT.
soa() {
	awk -v mode="$1" -v repl="$2" '
	function code_part(s,   i, c, quoted) {   # s without its ; comment
		quoted = 0
		for (i = 1; i <= length(s); i++) {
			c = substr(s, i, 1)
			if (c == "\\") i++
			else if (c == "\"") quoted = !quoted
			else if (c == ";" && !quoted) return substr(s, 1, i - 1)
		}
		return s
	}
	{
		line = $0
		if (!found) {
			rest = code_part(line); offset = 0; index_in_line = 0
			while (!found && match(rest, /[^ \t()]+/)) {
				token = substr(rest, RSTART, RLENGTH); width = RLENGTH
				start = offset + RSTART; offset = start + width - 1
				rest = substr(rest, RSTART + width); index_in_line++
				if (fields == 0) {
					# the owner name (first token of a line that starts in column 1) is not a type
					if (toupper(token) == "SOA" && !(index_in_line == 1 && line ~ /^[^ \t]/))
						fields = 1
					continue
				}
				if (++fields < 4) continue           # MNAME, RNAME
				if (token !~ /^[0-9]+$/) { bad = "SOA serial is not a number: " token; exit }
				found = 1; serial = token
				line = substr(line, 1, start - 1) repl substr(line, start + width)
			}
		}
		if (mode == "rewrite") print line
	}
	END {
		if (bad != "") { print bad > "/dev/stderr"; exit 2 }
		if (!found) { print "no SOA record with a serial found" > "/dev/stderr"; exit 2 }
		if (mode == "print") print serial
	}'
}

serial_of() {
	[ -r "$1" ] || die "cannot read $1"
	soa print "" <"$1" || die "$1: cannot find the SOA serial"
}

# next_serial CURRENT: date-based, strictly greater, within RFC 1982 limits.
next_serial() {
	today=${DRP_DNS_TODAY:-$(date -u +%Y%m%d)}
	awk -v cur="$1" -v today="$today" 'BEGIN {
		if (cur !~ /^[0-9]+$/) { print "not a serial: " cur > "/dev/stderr"; exit 2 }
		if (today !~ /^[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]$/) {
			print "not a date YYYYMMDD: " today > "/dev/stderr"; exit 2
		}
		base = today * 100
		next_ = (cur + 0 < base) ? base : cur + 1
		if (next_ > 4294967295) {
			print "serial " cur " cannot grow past 4294967295: reset it by hand (RFC 1982)" > "/dev/stderr"
			exit 2
		}
		if (next_ - cur >= 2147483648) next_ = cur + 1   # a bigger jump would look like a decrease
		printf "%.0f\n", next_
	}'
}

max_of() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f\n", (a + 0 > b + 0) ? a : b }'
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
serial)
	[ $# -eq 1 ] || die "usage: serial FILE"
	serial_of "$1"
	;;
next)
	[ $# -eq 1 ] || die "usage: next SERIAL"
	next_serial "$1"
	;;
same)
	[ $# -eq 2 ] || die "usage: same FILE1 FILE2"
	[ -r "$1" ] && [ -r "$2" ] || exit 1
	a=$(soa rewrite @SERIAL@ <"$1") || die "$1: cannot find the SOA serial"
	b=$(soa rewrite @SERIAL@ <"$2") || die "$2: cannot find the SOA serial"
	[ "$a" = "$b" ]
	;;
stage)
	[ $# -ge 2 ] && [ $# -le 3 ] || die "usage: stage SRC DEST [MIN]"
	src=$1 dest=$2 min=${3:-0}
	case $min in '' | *[!0-9]*) die "MIN must be a serial number, got '$min'" ;; esac
	serial_of "$src" >/dev/null
	old=$(serial_of "$dest")
	new=$(next_serial "$(max_of "$old" "$min")")
	rm -f "$dest.drp-new"            # never write through a planted link
	cp -p "$dest" "$dest.drp-new"    # owner, group and mode of the live file
	soa rewrite "$new" <"$src" >"$dest.drp-new" || { rm -f "$dest.drp-new"; die "cannot stage $src"; }
	echo "serial $old -> $new"
	;;
*)
	die "usage: dns-zone.sh serial|next|same|stage ... (see the header of this script)"
	;;
esac
