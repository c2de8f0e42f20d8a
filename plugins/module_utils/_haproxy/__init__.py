# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HAProxy's Runtime API (the stats socket), one concern per file.

transport: one connection in prompt mode; commands: checked command lines;
parse: replies to data and errors; certs: certificate transactions; info: what
HAProxy serves.
"""
