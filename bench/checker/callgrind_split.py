#!/usr/bin/env python3
"""bench/checker/callgrind_split.py: where a probe's instructions go, from callgrind dumps.

  bench/checker/callgrind_split.py PROBES FILE... [--top N]

FILEs are the per-thread dumps bench/checker/run --checker-wrapper "valgrind --tool=callgrind
--separate-threads=yes --callgrind-out-file=..." leaves for its window (name.1-NN); pass the probe
threads' files (the two largest besides librdkafka's broker thread, whose top function is memset
under LZ4F_compressBegin) and the window's probe count. Each function's self instructions go to
the first category whose pattern matches its name (or its object: librdkafka, liblz4, PCRE2);
prints a markdown row per category with instructions per probe, then the largest uncategorised.
Instruction counts, not time: valgrind counts a `rep stosb` per byte, so memset-heavy code (LZ4's
per-batch state) looks far dearer than it runs.
"""
import collections
import re
import sys

cats = [
  ("allocation (malloc/free/new/delete)", r"^(malloc|free|_int_malloc|_int_free|unlink_chunk|malloc_consolidate|calloc|cfree|realloc|_int_realloc|tcache|operator new|operator delete|__libc_malloc|__libc_free|arena|sysmalloc|alloc_perturb|checked_request2size)"),
  ("result encoding (JSON)", r"(append_utf8_escaped|append_value|encode_field|encode_check_result|std::to_chars\(char\*, char\*, double\)|write_rfc3339|append_hex_byte|__floating_to_chars|ryu|to_chars_i)"),
  ("librdkafka (produce call, in the probe's thread)", r"^(rd_kafka|0x0)"),
  ("Beast parsing (status line, headers, body framing)", r"boost::beast::http::(basic_parser|detail::basic_parser_base|detail::opt_token_list_policy|parser<|basic_parser<)|boost::beast::http::detail::(parse|is_|find_)"),
  ("Beast request: fields + serializer (buffers_cat etc.)", r"boost::beast::(http::serializer|http::basic_fields|buffers_cat_view|buffers_prefix_view|buffers_suffix|detail::buffers_ref|http::detail::chunk|http::detail::write|http::message|http::header|detail::variant|static_string|http::to_string|http::string_to_field|http::detail::field_table|http::detail::get_field_table|iequals|detail::ci_)"),
  ("Beast read/write composed ops (glue)", r"boost::beast::http::detail::(read|write)|boost::beast::(async_base|detail::bind|stable_async_base)|boost::beast::http::(async_read|async_write|read|write)"),
  ("timers (timer queue, target timers, watchdog)", r"(deadline_timer_service|timer_queue|schedule_timer|cancel_timer|chrono_time_traits|Shard::arm|Shard::on_due|basic_waitable_timer|wait_handler|arm_watchdog|TargetSchedule|timerfd|update_timeout|get_timeout|cancel_timer_by_key|wait_op)"),
  ("Asio: scheduler, reactor, sockets, coroutine machinery", r"boost::asio::"),
  ("libc system-call wrappers", r"^(__libc_|socket$|connect$|__connect|close$|__close|sendmsg|__sendmsg|recvfrom|__recvfrom|recvmsg|__recvmsg|epoll_wait|epoll_ctl|ioctl|__ioctl|getsockopt|shutdown|timerfd_settime|syscall|__GI_|read$|write$|__read|__write|writev|readv|clock_gettime|__clock_gettime|pthread_.*|__pthread_.*|futex|__lll|___pthread)"),
  ("memcpy/memset/strlen", r"^__(mem|str|wmem)"),
  ("std::string and other libstdc++", r"^std::|^__gnu_cxx|^__cxa"),
  ("fmt formatting", r"^fmt::|vfprintf|_IO_|__printf|hack_digit|__mpn"),
  ("metrics (histograms, counters)", r"(prometheus::|LocalHistogram|CheckerMetrics)"),
  ("address parsing (make_address, inet_pton)", r"(inet_pton|make_address|inet_ntop)"),
  ("regexp (PCRE2)", r"(pcre2|Regex)"),
  ("the probe and the scheduler (webmon code)", r"^webmon::"),
]


def self_costs(path):
    """{function: self instructions}, {function: object} of one callgrind out file."""
    names, cost, objs = {}, collections.Counter(), {}
    obj = fn = None
    pending_call = False

    def resolve(kind, text):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?", text)
        if not m:
            return text
        if m.group(2):
            names[(kind, m.group(1))] = m.group(2)
        return names.get((kind, m.group(1)), text)

    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("ob="):
                obj = resolve("ob", line[3:])
            elif line.startswith("fn="):
                fn = resolve("fn", line[3:])
                objs.setdefault(fn, obj)
            elif line.startswith("cob="):
                resolve("ob", line[4:])
            elif line.startswith("cfn="):
                resolve("fn", line[4:])
            elif line.startswith("calls="):
                pending_call = True
            elif line[0].isdigit() or line[0] in "+-*":
                parts = line.split()
                if len(parts) >= 2:
                    if pending_call:
                        pending_call = False  # the call's inclusive cost: not this function's own
                    else:
                        cost[fn] += int(parts[1])
    return cost, objs


def main():
    args = sys.argv[1:]
    top = 12
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i:i + 2]
    if len(args) < 2:
        sys.exit(__doc__)
    probes = float(args[0])
    total, by, other = 0, collections.Counter(), collections.Counter()
    for path in args[1:]:
        cost, objs = self_costs(path)
        for fn, c in cost.items():
            total += c
            ob = objs.get(fn) or ""
            if "librdkafka" in ob or "liblz4" in ob:
                key = "librdkafka (produce call, in the probe's thread)"
            elif "libpcre2" in ob:
                key = "regexp (PCRE2)"
            else:
                key = next((name for name, rx in cats if re.search(rx, fn)), None)
                if key is None:
                    key = "other"
                    other[fn] += c
            by[key] += c
    print(f"{total:,} instructions, {total / probes:,.0f} per probe ({probes:.0f} probes)\n")
    print("| where | instructions per probe | share |\n|---|---:|---:|")
    for k, c in by.most_common():
        print(f"| {k} | {c / probes:,.0f} | {c * 100 / total:.1f} % |")
    print("\nlargest uncategorised:")
    for n, c in other.most_common(top):
        print(f"{c / probes:8,.0f}  {n[:140]}")


if __name__ == "__main__":
    main()
