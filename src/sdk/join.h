/* The long-lived join credential systemd hands a unit (LoadCredential=
 * join:FILE puts it in the unit's private $CREDENTIALS_DIRECTORY), which an
 * admin enrolled with the trust kernel (docs/trust.md, "Under systemd").
 * Both a kernel run as a unit and a main process whose trust kernel it did
 * not spawn present it. */
#ifndef GRACE_SDK_JOIN_H
#define GRACE_SDK_JOIN_H

#define SDK_JOIN_HEX 64 /* a credential: 32 random bytes in lower-case hex */

/* Reads $CREDENTIALS_DIRECTORY/join into out (SDK_JOIN_HEX + 1 bytes): 64
 * hex digits, a newline after them allowed. 0, or -1 when there is none
 * (no directory, no file) or it is not a credential (logged: the process
 * then does not attest). The caller zeroes out when done. */
int sdk_join_credential(char *out);

#endif
