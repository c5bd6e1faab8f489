// Copyright Gen Digital Inc. All Rights Reserved.
//
// SPDX-License-Identifier: Apache-2.0

module github.com/hyperledger/aries-framework-go/component/log

go 1.19

require github.com/hyperledger/aries-framework-go/spi v0.0.0-20221025204933-b807371b6f1e
