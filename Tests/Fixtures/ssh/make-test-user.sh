#!/bin/sh
# Creates the password-auth test user for the sshd interop tests if it is missing.
set -e
USER_NAME=${1:-sshtest}
PASSWORD=${2:-sshtest-password}
mkdir -p /run/sshd
id "$USER_NAME" >/dev/null 2>&1 || useradd -m -s /bin/sh "$USER_NAME"
echo "$USER_NAME:$PASSWORD" | chpasswd
