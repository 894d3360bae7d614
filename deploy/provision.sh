#!/bin/sh
# Provision a 4-validator paynet network inside the compose `setup` container, with the same
# `paynet-node init / ca create / ca issue / genesis` steps as scripts/testnet.py and a real deployment:
#
#   docker compose -f deploy/compose.yaml --profile setup run --rm setup
#
# Reads passphrases from /run/secrets (never from the command line), writes each validator's home
# volume (/homes/validatorN) and the CA volume (/ca), and points every config.toml at its docker secret.
# Optional environment: PAYNET_CHAIN_ID, PAYNET_ADMIN_PUBKEY (hex), PAYNET_GENESIS_ARGS (extra
# `paynet-node genesis` options such as --asset ID:ISSUER:DECIMALS --balance ADDRESS:ASSET:AMOUNT).
# Single-host convenience: on separate machines each operator runs `init` on their own host and sends
# only the public key (docs/operations.md).
set -eu

N=4
CHAIN_ID=${PAYNET_CHAIN_ID:-paynet-compose}
UID_GID=10001:10001   # the image's `paynet` user

if [ -e /ca/ca.crt ]; then
    echo "already provisioned: /ca/ca.crt exists (remove the volumes to start over)" >&2
    exit 1
fi

secret() { head -n 1 "/run/secrets/$1"; }

validator_args=""
i=0
while [ "$i" -lt "$N" ]; do
    home="/homes/validator$i"
    peers=""
    j=0
    while [ "$j" -lt "$N" ]; do
        if [ "$j" -ne "$i" ]; then peers="$peers --peer validator$j:26656"; fi
        j=$((j + 1))
    done
    # shellcheck disable=SC2086  # $peers is a list of options
    out=$(PAYNET_NODE_PASSPHRASE="$(secret "validator${i}_passphrase")" paynet-node init --home "$home" \
          --name "validator-$i" --p2p-host 0.0.0.0 --p2p-port 26656 --api-host 0.0.0.0 --api-port 8080 $peers)
    pubkey=$(printf '%s' "$out" | python -c 'import json, sys; print(json.load(sys.stdin)["pubkey"])')
    # the running node reads its passphrase from the docker secret mounted at this path
    sed -i 's|^passphrase_file = ""$|passphrase_file = "/run/secrets/node_passphrase"|' "$home/config.toml"
    grep -q '^passphrase_file = "/run/secrets/node_passphrase"$' "$home/config.toml"
    echo "validator-$i: $out"
    validator_args="$validator_args --validator validator-$i:$pubkey:1"
    eval "pubkey_$i=$pubkey"
    i=$((i + 1))
done

export PAYNET_CA_PASSPHRASE
PAYNET_CA_PASSPHRASE=$(secret ca_passphrase)
paynet-node ca create --dir /ca
i=0
while [ "$i" -lt "$N" ]; do
    eval "pubkey=\$pubkey_$i"
    paynet-node ca issue --dir /ca --pubkey "$pubkey" --name "validator-$i" --out "/homes/validator$i/node.crt"
    i=$((i + 1))
done
unset PAYNET_CA_PASSPHRASE

admin=""
# one governance member with threshold 1; a consortium passes --member NAME:KEY ... --threshold M in PAYNET_GENESIS_ARGS
if [ -n "${PAYNET_ADMIN_PUBKEY:-}" ]; then admin="--member operator:$PAYNET_ADMIN_PUBKEY"; fi
# shellcheck disable=SC2086
paynet-node genesis --chain-id "$CHAIN_ID" --ca-cert /ca/ca.crt --out /ca/genesis.json \
    $validator_args $admin ${PAYNET_GENESIS_ARGS:-}

i=0
while [ "$i" -lt "$N" ]; do
    cp /ca/genesis.json "/homes/validator$i/genesis.json"
    i=$((i + 1))
done
chown -R "$UID_GID" /homes/validator0 /homes/validator1 /homes/validator2 /homes/validator3
chmod 0700 /ca
echo "provisioned $N validators for chain $CHAIN_ID; start them with: docker compose -f deploy/compose.yaml up -d"
