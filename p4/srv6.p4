/*
 * srv6lab pipeline: IPv6 routing with ECMP, SRv6 headend (H.Encaps, H.Encaps.Red),
 * SRv6 endpoint (End, End.X, uN, uA, End.DT6) and the SR domain edge filter.
 *
 * P4_16 for the v1model architecture, compiled by p4c-bm2-ss for BMv2 simple_switch_grpc.
 * The P4Info produced from this file is the contract between the controller and both switch
 * kinds (BMv2 and switchd); p4/README.md documents every table, action and parameter by its
 * P4Info name and how switchd maps it onto the Linux kernel.
 *
 * SID format: F3216 (RFC 9800 NEXT-C-SID). A 128-bit destination address inside the uSID
 * block reads, from the most significant bit:
 *
 *     bits 127..96   locator block (32 bits), fcbb:bb00::/32 in the default plan
 *     bits  95..80   active uSID (16 bits): a node ID (uN), or a node-local ID 0xE000-0xFFFF
 *                    (uA, End.DT6 and other local behaviours)
 *     bits  79..0    argument: the next uSIDs, 16 bits each, padded with zeros
 *
 * A uN/uA shift drops the active uSID: block ++ argument ++ 0x0000.
 */

#include <core.p4>
#include <v1model.p4>

const bit<16> ETHERTYPE_IPV6 = 0x86dd;

const bit<8> PROTO_TCP = 6;
const bit<8> PROTO_UDP = 17;
const bit<8> PROTO_IPV6 = 41;          // IPv6-in-IPv6: the inner packet of an SRv6 encapsulation
const bit<8> PROTO_IPV6_ROUTE = 43;    // IPv6 Routing header
const bit<8> PROTO_ICMPV6 = 58;

const bit<8> ROUTING_TYPE_SRH = 4;     // RFC 8754
const bit<8> SRH_MAX_SEGMENTS = 6;     // length of the segment list this pipeline parses and pushes

const bit<16> IPV6_HEADER_BYTES = 40;
const bit<16> SRH_FIXED_BYTES = 8;

// A rewritten destination that routing_v6 does not know is looked up again from the top
// (see "Second lookup" in the ingress control) at most this many times.
const bit<8> MAX_RECIRCULATIONS = 4;

typedef bit<48> mac_addr_t;
typedef bit<128> ipv6_addr_t;
typedef bit<9> port_num_t;
typedef bit<16> nexthop_id_t;

//------------------------------------------------------------------------------------------
// Headers
//------------------------------------------------------------------------------------------

header ethernet_t {
    mac_addr_t dst_addr;
    mac_addr_t src_addr;
    bit<16> ether_type;
}

header ipv6_t {
    bit<4> version;
    bit<8> traffic_class;
    bit<20> flow_label;
    bit<16> payload_len;
    bit<8> next_header;
    bit<8> hop_limit;
    ipv6_addr_t src_addr;
    ipv6_addr_t dst_addr;
}

// Segment Routing Header, RFC 8754 section 2: the fixed part. The segment list follows it
// (srh_segment_t, Segment List[0] first on the wire: Segment List[0] is the LAST segment of
// the path), then optional TLVs.
header srh_t {
    bit<8> next_header;
    bit<8> hdr_ext_len;      // 8-octet units, not counting the first 8 octets
    bit<8> routing_type;     // 4
    bit<8> segments_left;
    bit<8> last_entry;       // index of the last element of the segment list
    bit<8> flags;
    bit<16> tag;
}

header srh_segment_t {
    ipv6_addr_t sid;
}

// SRH TLVs (padding, HMAC, ...) are kept as opaque bytes: transit and End behaviours carry
// them unchanged, decapsulation removes them. Up to 128 bytes.
header srh_tlvs_t {
    varbit<1024> data;
}

header tcp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<32> seq_no;
    bit<32> ack_no;
    bit<4> data_offset;
    bit<4> res;
    bit<8> flags;
    bit<16> window;
    bit<16> checksum;
    bit<16> urgent_ptr;
}

header udp_t {
    bit<16> src_port;
    bit<16> dst_port;
    bit<16> len;
    bit<16> checksum;
}

header icmpv6_t {
    bit<8> type;
    bit<8> code;
    bit<16> checksum;
}

struct parsed_headers_t {
    ethernet_t ethernet;
    ipv6_t ipv6;                                  // the outer (or only) IPv6 header
    srh_t srh;
    srh_segment_t[SRH_MAX_SEGMENTS] srh_segments; // srh_segments[i] is Segment List[i]
    srh_tlvs_t srh_tlvs;
    ipv6_t inner_ipv6;                            // after next header 41 (IPv6 or SRH)
    tcp_t tcp;                                    // L4 of the innermost IPv6 packet
    udp_t udp;
    icmpv6_t icmpv6;
}

struct local_metadata_t {
    // Set by the parser.
    ipv6_addr_t next_sid;        // Segment List[Segments Left - 1]: the End behaviour's new DA
    bit<16> l4_src_port;         // TCP or UDP ports of the innermost packet, 0 otherwise
    bit<16> l4_dst_port;

    // Set by table actions.
    bool is_from_host_port;      // host_port: the packet entered the SR domain here
    bool is_internal_sid;        // sid_block: the destination is a SID of this SR domain
    nexthop_id_t nexthop_id;     // routing_v6, end_x, usid_ua: key of next_hop
    bool nexthop_forced;         // end_x, usid_ua: skip routing_v6

    // srv6_headend: the policy the packet is steered into.
    bool encap;
    bool encap_reduced;          // H.Encaps.Red: the first segment is not in the SRH
    ipv6_addr_t encap_src;
    bit<8> encap_num_segments;
    ipv6_addr_t encap_s1;        // first segment: the outer destination
    ipv6_addr_t encap_s2;
    ipv6_addr_t encap_s3;
    ipv6_addr_t encap_s4;
    ipv6_addr_t encap_s5;
    ipv6_addr_t encap_s6;

    // Pipeline state.
    bool dst_rewritten;          // End, uN or H.Encaps set a new destination on this pass
    bool recirculate;            // look the new destination up again (egress recirculates)
    @field_list(0)
    bit<8> recirculations;       // passes so far; kept across recirculation
}

//------------------------------------------------------------------------------------------
// Parser
//------------------------------------------------------------------------------------------

parser ParserImpl(packet_in packet,
                  out parsed_headers_t hdr,
                  inout local_metadata_t local_metadata,
                  inout standard_metadata_t standard_metadata) {

    state start {
        transition parse_ethernet;
    }

    state parse_ethernet {
        packet.extract(hdr.ethernet);
        transition select(hdr.ethernet.ether_type) {
            ETHERTYPE_IPV6: parse_ipv6;
            default: accept;
        }
    }

    state parse_ipv6 {
        packet.extract(hdr.ipv6);
        transition select(hdr.ipv6.next_header) {
            PROTO_IPV6_ROUTE: parse_routing_header;
            PROTO_IPV6: parse_inner_ipv6;
            PROTO_TCP: parse_tcp;
            PROTO_UDP: parse_udp;
            PROTO_ICMPV6: parse_icmpv6;
            default: accept;
        }
    }

    // A routing header other than the SRH is left in the payload, untouched.
    state parse_routing_header {
        transition select(packet.lookahead<bit<24>>()[7:0]) {
            ROUTING_TYPE_SRH: parse_srh;
            default: accept;
        }
    }

    state parse_srh {
        packet.extract(hdr.srh);
        transition parse_srh_segment;
    }

    // Extracts Segment List[0] .. Segment List[Last Entry]. A list longer than
    // SRH_MAX_SEGMENTS overflows the stack: parser error, and the ingress drops the packet.
    state parse_srh_segment {
        packet.extract(hdr.srh_segments.next);
        bool is_next_sid =
            hdr.srh_segments.lastIndex == (bit<32>)hdr.srh.segments_left - 1;
        transition select(is_next_sid) {
            true: record_next_sid;
            false: check_last_segment;
        }
    }

    state record_next_sid {
        local_metadata.next_sid = hdr.srh_segments.last.sid;
        transition check_last_segment;
    }

    state check_last_segment {
        bool is_last = hdr.srh_segments.lastIndex == (bit<32>)hdr.srh.last_entry;
        transition select(is_last) {
            true: parse_srh_tlvs;
            false: parse_srh_segment;
        }
    }

    // Hdr Ext Len counts 8-octet units: 2 per segment, the rest is TLVs. A Hdr Ext Len too
    // small for the segment list makes the length below wrap: parser error.
    state parse_srh_tlvs {
        bit<32> segment_units = ((bit<32>)hdr.srh.last_entry + 1) << 1;
        bit<32> tlv_units = (bit<32>)hdr.srh.hdr_ext_len - segment_units;
        transition select(tlv_units) {
            0: parse_srh_next_header;
            default: extract_srh_tlvs;
        }
    }

    state extract_srh_tlvs {
        packet.extract(hdr.srh_tlvs,
                       (((bit<32>)hdr.srh.hdr_ext_len - (((bit<32>)hdr.srh.last_entry + 1) << 1)) << 6));
        transition parse_srh_next_header;
    }

    state parse_srh_next_header {
        transition select(hdr.srh.next_header) {
            PROTO_IPV6: parse_inner_ipv6;
            PROTO_TCP: parse_tcp;
            PROTO_UDP: parse_udp;
            PROTO_ICMPV6: parse_icmpv6;
            default: accept;
        }
    }

    state parse_inner_ipv6 {
        packet.extract(hdr.inner_ipv6);
        transition select(hdr.inner_ipv6.next_header) {
            PROTO_TCP: parse_tcp;
            PROTO_UDP: parse_udp;
            PROTO_ICMPV6: parse_icmpv6;
            default: accept;
        }
    }

    state parse_tcp {
        packet.extract(hdr.tcp);
        local_metadata.l4_src_port = hdr.tcp.src_port;
        local_metadata.l4_dst_port = hdr.tcp.dst_port;
        transition accept;
    }

    state parse_udp {
        packet.extract(hdr.udp);
        local_metadata.l4_src_port = hdr.udp.src_port;
        local_metadata.l4_dst_port = hdr.udp.dst_port;
        transition accept;
    }

    state parse_icmpv6 {
        packet.extract(hdr.icmpv6);
        transition accept;
    }
}

//------------------------------------------------------------------------------------------
// Checksums: none. IPv6 has no header checksum. SRv6 operations change only outer headers:
// the L4 checksum of an encapsulated packet covers the inner addresses, and for a packet
// with an SRH it covers the final destination (RFC 8200 section 8.1), which End and uN
// rewrites do not change.
//------------------------------------------------------------------------------------------

control VerifyChecksumImpl(inout parsed_headers_t hdr,
                           inout local_metadata_t local_metadata) {
    apply { }
}

control ComputeChecksumImpl(inout parsed_headers_t hdr,
                            inout local_metadata_t local_metadata) {
    apply { }
}

//------------------------------------------------------------------------------------------
// SRv6 helpers
//------------------------------------------------------------------------------------------

// F3216: true when the argument (the uSIDs after the active one) is not empty.
bool usid_has_next(in ipv6_addr_t dst) {
    return dst[79:0] != 0;
}

// F3216 shift (RFC 9800 section 4.1, End with NEXT-C-SID, S05-S06): keep the 32-bit block,
// drop the active 16-bit uSID, move the argument up and pad with 0x0000.
ipv6_addr_t usid_shift(in ipv6_addr_t dst) {
    return dst[127:96] ++ dst[79:0] ++ 16w0;
}

//------------------------------------------------------------------------------------------
// Ingress
//------------------------------------------------------------------------------------------

control IngressPipeImpl(inout parsed_headers_t hdr,
                        inout local_metadata_t local_metadata,
                        inout standard_metadata_t standard_metadata) {

    // --- SR domain edge (RFC 8754 section 5.1) -------------------------------------------

    action mark_host_port() {
        local_metadata.is_from_host_port = true;
    }

    // The ports toward hosts: the edge of the SR domain.
    table host_port {
        key = {
            standard_metadata.ingress_port: exact;
        }
        actions = {
            mark_host_port;
            @defaultonly NoAction;
        }
        default_action = NoAction();
        size = 256;
    }

    action mark_internal_sid() {
        local_metadata.is_internal_sid = true;
    }

    // The SID space of the SR domain (the uSID block, and any other SID prefix).
    table sid_block {
        key = {
            hdr.ipv6.dst_addr: lpm;
        }
        actions = {
            mark_internal_sid;
            @defaultonly NoAction;
        }
        default_action = NoAction();
        size = 64;
    }

    // --- SRv6 endpoint -------------------------------------------------------------------
    // The actions record the behaviour and its parameters; the apply block below runs it,
    // because each behaviour branches on the packet (SRH present, Segments Left, argument).

    direct_counter(CounterType.packets_and_bytes) my_sid_counter;

    // End (RFC 8986 4.1): Segments Left - 1, DA = Segment List[Segments Left], FIB lookup.
    action end() {
    }

    // End.X (RFC 8986 4.2): End, then forward to the given next hop (no FIB lookup).
    action end_x(nexthop_id_t nexthop_id) {
        local_metadata.nexthop_id = nexthop_id;
        local_metadata.nexthop_forced = true;
    }

    // uN (RFC 9800 4.1, End with NEXT-C-SID, F3216): shift the uSID container; when the
    // argument is empty, End on the SRH. Then FIB lookup.
    action usid_un() {
    }

    // uA (RFC 9800 4.2, End.X with NEXT-C-SID, F3216): uN's shift or End, then forward to
    // the given next hop.
    action usid_ua(nexthop_id_t nexthop_id) {
        local_metadata.nexthop_id = nexthop_id;
        local_metadata.nexthop_forced = true;
    }

    // End.DT6 (RFC 8986 4.6): decapsulate, then route the inner packet with routing_v6.
    action end_dt6() {
    }

    table my_sid {
        key = {
            hdr.ipv6.dst_addr: lpm;
        }
        actions = {
            end;
            end_x;
            usid_un;
            usid_ua;
            end_dt6;
            @defaultonly NoAction;
        }
        default_action = NoAction();
        counters = my_sid_counter;
        size = 4096;
    }

    // --- SRv6 headend --------------------------------------------------------------------
    // A policy is a list of 1..6 segments s1..s<num_segments> (s1 visited first); parameters
    // past num_segments are ignored. Several members in a group spread flows over several
    // segment lists, in proportion to the members' weights.

    action_selector(HashAlgorithm.crc16, 32w1024, 32w16) headend_selector;

    // H.Encaps (RFC 8986 5.1): push an outer IPv6 header (source src_addr, destination s1)
    // and an SRH that holds every segment.
    action h_encaps(ipv6_addr_t src_addr, bit<8> num_segments,
                    ipv6_addr_t s1, ipv6_addr_t s2, ipv6_addr_t s3,
                    ipv6_addr_t s4, ipv6_addr_t s5, ipv6_addr_t s6) {
        local_metadata.encap = true;
        local_metadata.encap_reduced = false;
        local_metadata.encap_src = src_addr;
        local_metadata.encap_num_segments = num_segments;
        local_metadata.encap_s1 = s1;
        local_metadata.encap_s2 = s2;
        local_metadata.encap_s3 = s3;
        local_metadata.encap_s4 = s4;
        local_metadata.encap_s5 = s5;
        local_metadata.encap_s6 = s6;
    }

    // H.Encaps.Red (RFC 8986 5.2): as H.Encaps, but the SRH leaves out s1 (it is only in the
    // destination address); a single-segment policy pushes no SRH at all.
    action h_encaps_red(ipv6_addr_t src_addr, bit<8> num_segments,
                        ipv6_addr_t s1, ipv6_addr_t s2, ipv6_addr_t s3,
                        ipv6_addr_t s4, ipv6_addr_t s5, ipv6_addr_t s6) {
        h_encaps(src_addr, num_segments, s1, s2, s3, s4, s5, s6);
        local_metadata.encap_reduced = true;
    }

    table srv6_headend {
        key = {
            hdr.ipv6.dst_addr: lpm;
            hdr.ipv6.src_addr: selector;
            hdr.ipv6.dst_addr: selector;
            hdr.ipv6.flow_label: selector;
            local_metadata.l4_src_port: selector;
            local_metadata.l4_dst_port: selector;
        }
        actions = {
            h_encaps;
            h_encaps_red;
            @defaultonly NoAction;
        }
        implementation = headend_selector;
        size = 4096;
    }

    // --- IPv6 routing --------------------------------------------------------------------

    action_selector(HashAlgorithm.crc16, 32w4096, 32w16) ecmp_selector;

    action set_next_hop(nexthop_id_t nexthop_id) {
        local_metadata.nexthop_id = nexthop_id;
    }

    table routing_v6 {
        key = {
            hdr.ipv6.dst_addr: lpm;
            hdr.ipv6.src_addr: selector;
            hdr.ipv6.dst_addr: selector;
            hdr.ipv6.flow_label: selector;
            hdr.ipv6.next_header: selector;
            local_metadata.l4_src_port: selector;
            local_metadata.l4_dst_port: selector;
        }
        actions = {
            set_next_hop;
            @defaultonly NoAction;
        }
        implementation = ecmp_selector;
        size = 65536;
    }

    action rewrite(port_num_t port, mac_addr_t src_mac, mac_addr_t dst_mac) {
        standard_metadata.egress_spec = port;
        hdr.ethernet.src_addr = src_mac;
        hdr.ethernet.dst_addr = dst_mac;
    }

    table next_hop {
        key = {
            local_metadata.nexthop_id: exact;
        }
        actions = {
            rewrite;
            @defaultonly NoAction;
        }
        default_action = NoAction();
        size = 4096;
    }

    apply {
        if (standard_metadata.parser_error != error.NoError || !hdr.ipv6.isValid()) {
            mark_to_drop(standard_metadata);
            exit;
        }

        // SR domain edge: a packet that enters from a host with an SRH and a destination in
        // the domain's SID space is dropped (RFC 8754 section 5.1). A recirculated packet was
        // checked on its first pass.
        if (local_metadata.recirculations == 0) {
            host_port.apply();
            if (local_metadata.is_from_host_port && hdr.srh.isValid()) {
                sid_block.apply();
                if (local_metadata.is_internal_sid) {
                    mark_to_drop(standard_metadata);
                    exit;
                }
            }
        }

        // SRv6 endpoint.
        bool is_local_sid = true;
        bool run_end = false;
        switch (my_sid.apply().action_run) {
            end: {
                run_end = true;
                local_metadata.dst_rewritten = true;
            }
            end_x: {
                run_end = true;
            }
            usid_un: {
                if (usid_has_next(hdr.ipv6.dst_addr)) {
                    hdr.ipv6.dst_addr = usid_shift(hdr.ipv6.dst_addr);
                } else {
                    run_end = true;
                }
                local_metadata.dst_rewritten = true;
            }
            usid_ua: {
                if (usid_has_next(hdr.ipv6.dst_addr)) {
                    hdr.ipv6.dst_addr = usid_shift(hdr.ipv6.dst_addr);
                } else {
                    run_end = true;
                }
            }
            end_dt6: {
                // RFC 8986 4.6: only when no segment is left and the payload is IPv6.
                // Removes the outer IPv6 header and the SRH with its TLVs.
                if (hdr.inner_ipv6.isValid()
                        && (!hdr.srh.isValid() || hdr.srh.segments_left == 0)) {
                    hdr.ipv6 = hdr.inner_ipv6;
                    hdr.inner_ipv6.setInvalid();
                    hdr.srh.setInvalid();
                    hdr.srh_segments.pop_front((int)SRH_MAX_SEGMENTS);
                    hdr.srh_tlvs.setInvalid();
                } else {
                    mark_to_drop(standard_metadata);
                    exit;
                }
            }
            default: {
                is_local_sid = false;
            }
        }

        // The End behaviour on the SRH (RFC 8986 4.1, S02-S15; the hop limit is honoured
        // below, when the packet is forwarded). Dropped: no SRH, Segments Left 0 (this
        // switch is no host: nothing would consume the payload), or Segments Left beyond
        // the segment list.
        if (run_end) {
            if (hdr.srh.isValid()
                    && hdr.srh.segments_left != 0
                    && hdr.srh.segments_left <= hdr.srh.last_entry + 1) {
                hdr.srh.segments_left = hdr.srh.segments_left - 1;
                hdr.ipv6.dst_addr = local_metadata.next_sid;
            } else {
                mark_to_drop(standard_metadata);
                exit;
            }
        }

        // SRv6 headend: only for a packet that is not for one of our SIDs and not already
        // SRv6 or IPv6-in-IPv6 (this pipeline holds one level of encapsulation).
        if (!is_local_sid && !hdr.srh.isValid() && !hdr.inner_ipv6.isValid()) {
            srv6_headend.apply();
        }
        if (local_metadata.encap) {
            bit<8> n = local_metadata.encap_num_segments;
            if (n == 0 || n > SRH_MAX_SEGMENTS) {
                mark_to_drop(standard_metadata);
                exit;
            }
            // Segment List[0] is the last segment. Each push_front moves the segments
            // pushed so far one place up, so pushing s1..sn in order leaves sn in [0] and
            // s1 in [n-1]. H.Encaps.Red leaves s1 out.
            if (!local_metadata.encap_reduced) {
                hdr.srh_segments.push_front(1);
                hdr.srh_segments[0].setValid();
                hdr.srh_segments[0].sid = local_metadata.encap_s1;
            }
            if (n > 1) {
                hdr.srh_segments.push_front(1);
                hdr.srh_segments[0].setValid();
                hdr.srh_segments[0].sid = local_metadata.encap_s2;
            }
            if (n > 2) {
                hdr.srh_segments.push_front(1);
                hdr.srh_segments[0].setValid();
                hdr.srh_segments[0].sid = local_metadata.encap_s3;
            }
            if (n > 3) {
                hdr.srh_segments.push_front(1);
                hdr.srh_segments[0].setValid();
                hdr.srh_segments[0].sid = local_metadata.encap_s4;
            }
            if (n > 4) {
                hdr.srh_segments.push_front(1);
                hdr.srh_segments[0].setValid();
                hdr.srh_segments[0].sid = local_metadata.encap_s5;
            }
            if (n > 5) {
                hdr.srh_segments.push_front(1);
                hdr.srh_segments[0].setValid();
                hdr.srh_segments[0].sid = local_metadata.encap_s6;
            }
            bit<8> entries = n;
            if (local_metadata.encap_reduced) {
                entries = n - 1;
            }

            hdr.inner_ipv6 = hdr.ipv6;
            // The outer header keeps the inner traffic class, flow label and hop limit, as
            // the kernel's seg6 encapsulation does.
            hdr.ipv6.payload_len = IPV6_HEADER_BYTES + hdr.inner_ipv6.payload_len;
            hdr.ipv6.next_header = PROTO_IPV6;
            hdr.ipv6.src_addr = local_metadata.encap_src;
            hdr.ipv6.dst_addr = local_metadata.encap_s1;
            if (entries > 0) {
                hdr.srh.setValid();
                hdr.srh.next_header = PROTO_IPV6;
                hdr.srh.hdr_ext_len = entries << 1;
                hdr.srh.routing_type = ROUTING_TYPE_SRH;
                hdr.srh.segments_left = n - 1;
                hdr.srh.last_entry = entries - 1;
                hdr.srh.flags = 0;
                hdr.srh.tag = 0;
                hdr.ipv6.next_header = PROTO_IPV6_ROUTE;
                hdr.ipv6.payload_len = hdr.ipv6.payload_len + SRH_FIXED_BYTES
                                       + (((bit<16>)entries) << 4);
            }
            local_metadata.dst_rewritten = true;
        }

        // IPv6 routing, unless End.X or uA chose the next hop.
        if (!local_metadata.nexthop_forced) {
            if (!routing_v6.apply().hit) {
                // Second lookup. The kernel looks a rewritten destination up in one FIB that
                // also holds this switch's SIDs, so a new destination that is our own SID
                // (a node-local uA or End.DT6 uSID exposed by a shift, say) is processed
                // here. BMv2 gets the same by recirculating: the next pass starts at my_sid.
                if (local_metadata.dst_rewritten
                        && local_metadata.recirculations < MAX_RECIRCULATIONS) {
                    local_metadata.recirculations = local_metadata.recirculations + 1;
                    local_metadata.recirculate = true;
                    standard_metadata.egress_spec = standard_metadata.ingress_port;
                } else {
                    mark_to_drop(standard_metadata);
                }
                exit;
            }
        }

        // Hop limit: checked and decremented once per switch, when the packet is forwarded
        // (after an encapsulation, on the outer header; after a decapsulation, on the inner).
        if (hdr.ipv6.hop_limit <= 1) {
            mark_to_drop(standard_metadata);
            exit;
        }
        hdr.ipv6.hop_limit = hdr.ipv6.hop_limit - 1;

        if (!next_hop.apply().hit) {
            mark_to_drop(standard_metadata);
        }
    }
}

//------------------------------------------------------------------------------------------
// Egress
//------------------------------------------------------------------------------------------

control EgressPipeImpl(inout parsed_headers_t hdr,
                       inout local_metadata_t local_metadata,
                       inout standard_metadata_t standard_metadata) {
    apply {
        if (local_metadata.recirculate) {
            recirculate_preserving_field_list(0);
        }
    }
}

//------------------------------------------------------------------------------------------
// Deparser
//------------------------------------------------------------------------------------------

control DeparserImpl(packet_out packet, in parsed_headers_t hdr) {
    apply {
        packet.emit(hdr.ethernet);
        packet.emit(hdr.ipv6);
        packet.emit(hdr.srh);
        packet.emit(hdr.srh_segments);
        packet.emit(hdr.srh_tlvs);
        packet.emit(hdr.inner_ipv6);
        packet.emit(hdr.tcp);
        packet.emit(hdr.udp);
        packet.emit(hdr.icmpv6);
    }
}

V1Switch(
    ParserImpl(),
    VerifyChecksumImpl(),
    IngressPipeImpl(),
    EgressPipeImpl(),
    ComputeChecksumImpl(),
    DeparserImpl()
) main;
