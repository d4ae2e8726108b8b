/* SPDX-License-Identifier: Apache-2.0 */
/*
 * version: the release both programs print (keyauthd -V, keyauthctl
 * --version) and keyauthd reports (keyauth_build_info, event=started).
 */
#ifndef AGENT_VERSION_H
#define AGENT_VERSION_H

#define KEYAUTH_VERSION "0.1.0"

#endif /* AGENT_VERSION_H */
