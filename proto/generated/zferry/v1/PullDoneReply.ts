// Original file: proto/zferry.proto


export interface PullDoneReply {
}

export interface PullDoneReply__Output {
}
