# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: markdown_escape
short_description: Text safe to put in a Markdown table cell
version_added: 0.2.0
description:
  - Backslash-escapes what Markdown (CommonMark, GitHub's tables) would read as markup or as a cell border,
    so that a certificate or host name shows as it is. The characters are the backslash itself, C(|), C(*),
    C(_), the backtick, C([), C(]), C(<), C(>), C(~) and C(#).
  - Line breaks become spaces, since a table row is one line. Null becomes the empty string.
author:
  - tlsops.haproxy_acme contributors (@tlsops)
options:
  _input:
    description: The text; anything else is converted to text first.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: One row of a Markdown table
  ansible.builtin.debug:
    msg: "| {{ 'a|b_c' | tlsops.haproxy_acme.markdown_escape }} |"
    # prints: | a\|b\_c |
"""

RETURN = r"""
_value:
  description: The escaped text.
  type: str
"""

import typing as t

from ansible_collections.tlsops.haproxy_acme.plugins.module_utils._fleet import markdown_escape


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"markdown_escape": markdown_escape}
